// Package replica replicates the site store with Raft.
//
// Every change to the store is a command: one type byte and a JSON payload
// (command.go). A command is proposed on the leader (a follower forwards it
// over HTTP to the leader's API, see forward.go), committed to the Raft log
// (kept in bbolt by raft-boltdb), and applied by the FSM on every node.
//
// Invariants:
//
//   - The FSM applies each batch of committed logs in one bbolt transaction
//     that also records the last applied index, so one fsync covers every
//     writer in the batch and a crash never separates state from index.
//   - A log at or below the store's applied index is skipped: replay after a
//     restart is a no-op. Raft is told not to restore snapshots at start-up
//     for the same reason: the store file already holds the state.
//   - Apply is deterministic: it reads no clock and no randomness; the
//     proposer puts the time into the command.
//   - A command that fails a domain check (version conflict, a MAC already
//     in use) changes nothing and returns a *errs.Error as its result. A
//     command that does not decode, or whose type is unknown and not marked
//     ignorable (bit 128), stops the node: a log it cannot understand was
//     written by newer code, and skipping it would fork the replicas.
//   - Snapshots are bbolt files streamed from a read transaction; Restore
//     swaps a fresh file in under the store's exclusive lock.
package replica
