// Package store keeps all of a site's state in one bbolt file.
//
// The store is the state machine's memory: every change reaches it through the
// replicated log (package replica), which calls the Unsafe* methods inside one
// write transaction per batch of commands. Nothing else writes to it.
//
// Invariants:
//
//   - Each object carries Version, the Raft index of the command that last
//     changed it. Versions only grow; a put that names an expected version
//     fails with errs.ErrConflict when the stored one differs.
//   - The meta bucket records the applied Raft index in the same transaction
//     as the changes of that index, so a crash never leaves the two apart and
//     replaying an index at or below it changes nothing.
//   - Secondary indexes (a machine's MACs) are written in the same transaction
//     as the object they index; a MAC belongs to at most one machine.
//   - Event sequence numbers are dense and assigned in log order, so every
//     node of a site numbers every event the same way.
//   - Reads never block on writes (bbolt MVCC); Restore swaps the file under
//     an exclusive lock, so no reader sees a half-restored store.
//
// Secrets (BMC passwords) are stored only sealed by package seal, and the
// types here never return them in their public views (see Machine.View).
package store
