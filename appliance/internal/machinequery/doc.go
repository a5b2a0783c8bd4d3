// Package machinequery is the appliance's machine search: the grammar of
// the root internal/machinequery (its doc says what a query may say),
// read against the site's store: Select gathers each machine with its
// current lease addresses and the state of its workflow, and matches it.
//
// # Cost
//
// Select reads each bucket it needs once: the machines always, the
// leases only for a query with an ip term, the workflows only for one
// with a workflow term. Matching a machine reads nothing more.
package machinequery
