// Package machinequery is the appliance's machine search: a filter
// grammar in the manner of MAAS's, parsed once (Parse) and matched
// against machines with their current lease addresses and the state of
// their workflow (Query.Match, Select). It is pure logic: it reads the
// store's types, never the network or the clock (the caller passes the
// time leases are judged at).
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
// Select reads each bucket it needs once: the machines always, the
// leases only for a query with an ip term, the workflows only for one
// with a workflow term. Matching a machine reads nothing more.
package machinequery
