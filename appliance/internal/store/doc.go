// Package store keeps all of a site's state in one bbolt file: the schema
// (schema.go lists every bucket), one file per entity with its
// validation, the indexes, and transactions. It has no rules: what may be
// stored, and what a change does to other objects, is package site's,
// whose state machine is the only writer (the Unsafe* methods, inside one
// write transaction per group of commands).
//
// Invariants:
//
//   - Each object carries Version, the Raft index of the command that last
//     changed it. Versions only grow; a put that names an expected version
//     fails with a conflict when the stored one differs.
//   - The meta bucket records the applied Raft index in the same transaction
//     as the changes of that index, so a crash never leaves the two apart and
//     replaying an index at or below it changes nothing.
//   - Secondary indexes (a machine's MACs and reserved addresses, a MAC's
//     lease per subnet, the active workflows and jobs, the waiting orders
//     in the order they were placed) are written in the same transaction
//     as the object they index; a MAC belongs to at most one machine.
//   - The artifact generation (ArtifactGeneration) moves with every write
//     of an image or an artifact record, so that a node's replicator
//     wakes for those alone.
//   - Event sequence numbers are dense and assigned in log order, so every
//     node of a site numbers every event the same way.
//   - Reads never block on writes (bbolt MVCC); Restore swaps the file under
//     an exclusive lock, so no reader sees a half-restored store.
//   - An existing file is read page by page before it is opened for
//     writing (internal/boltfile): an empty, truncated or damaged file is
//     an ErrCorrupt error naming it, never a new store or a crash.
//   - A file of a newer schema is refused; an older one is migrated at open
//     in the transaction that records the new version (schema.go).
//
// Secrets (BMC passwords) are stored only sealed by package seal, and the
// types here never return them in their public views (see Machine.View).
package store
