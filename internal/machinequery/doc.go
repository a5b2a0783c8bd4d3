// Package machinequery is the machine search of both sides: a filter
// grammar in the manner of MAAS's, parsed once (Parse at a site,
// ParseFleet at central) and matched against a Subject (Query.Match):
// a machine as a query reads it, with its addresses and the state of
// its workflow, and at central its site, the site's labels and its last
// order. It is pure logic: it reads no store, the network or the clock.
// The appliance builds its subjects from its store
// (appliance/internal/machinequery.Select), central from its fleet
// index (central/internal/store, fleetindex.go).
//
// # Grammar
//
// A query is terms separated by spaces; a machine matches when it
// matches every term. A term is a free word or field:values.
//
//	web-01                 a free word: a substring of the hostname, a MAC or the id (case-insensitive)
//	mac:02:00:00:00:00:01  a MAC, in any usual form; mac:02:00:* a pattern
//	ip:198.18.1.7          an address an interface reserves or a current lease holds
//	ip:198.18.1.0/24       any such address in the prefix
//	hostname:web-*         the hostname, whole (case-insensitive)
//	id:rack1-*             the id, whole
//	state:failed           the machine's state (discovered, ready, provisioning, provisioned, failed, deprovisioning)
//	workflow:running       its current workflow's status (pending, running, succeeded, failed, timed_out, or none)
//	tag:gpu                one of its tags, whole
//
// At central (ParseFleet), also:
//
//	site:eu-*              its site's id, whole
//	label:region=eu        a label of its site (the value may be a pattern); label:region any value
//	order:b1765-*          its last order's key, whole
//	order-status:failed    its last order's status (placed, delivered, waiting, running, succeeded, failed, or none)
//
// A * in a value or a free word matches any run of characters. Several
// values, comma-separated, match any of them: state:failed,provisioning.
// A term prefixed with - or ! matches the machines the term does not:
// -tag:gpu, !state:ready. Double quotes take spaces, commas and colons
// literally: hostname:"web 1", "tag:odd". Inside quotes, \" and \\
// stand for " and \.
//
// A free word with a colon whose part before the first colon is not a
// field is taken as a MAC (or part of one) when it is made of hex digits,
// colons, dashes and *: 02:00:00:aa matches that MAC prefix anywhere.
//
// # Errors
//
// Parse refuses a query it cannot read whole with an *Error that names
// the term at fault and its column, so a console can point at it; an
// empty query matches every machine.
//
// # Cost
//
// Matching reads only the Subject; the caller fills in the addresses and
// the workflow state only for a query that NeedsAddrs or NeedsWorkflows.
package machinequery
