// Package raftnode is the replicated core both sides of Outpost run on: a
// member of a hashicorp/raft cluster that carries commands (bytes, see
// package command) to an Applier, the side's state machine over its bbolt
// store. The site (appliance/internal/site) and central
// (central/internal/store) each implement Applier; neither this package
// nor command knows what their commands mean.
//
// The Raft log lives in raft.db (raft-boltdb, fsync on every append) and
// snapshots in snapshots/, both under Config.Dir. Snapshot files are 0600
// in 0700 directories (raft's own modes are 0644 and 0755; a snapshot is
// the whole store).
//
// # A data directory is whole or refused
//
// A node starts only when its store, Raft log and snapshots agree;
// otherwise Open (and CheckDataDir, which a daemon calls before its store
// opens the file for writing) refuses with an error matching ErrNotWhole
// that names the file, and changes nothing. Never a fresh start: a node
// that bootstrapped a new log under a store that applied an old one would
// form a second cluster, and its writes would be skipped as replays. The
// rules, with A the store's applied index, F-L the log's entries and S the
// newest snapshot's last index:
//
//   - raft.db and the store file, where they exist, are whole bbolt files
//     (package boltfile reads every page first; an empty file is refused,
//     not made a new one), and the newest snapshot matches its checksum;
//   - a store file is missing only where the log and snapshots are empty
//     too, and raft.db only where A is 0 and there is no snapshot (raft.db
//     also holds the node's term and vote);
//   - A <= max(L, S): the store has applied nothing the log and snapshots
//     cannot explain;
//   - the log follows the newest snapshot without a gap (F <= S+1).
//
// Raft takes the newest snapshot as applied and replays the entries after
// it; a store behind it (A < S, a file restored from an older copy) is
// first brought up to S, from the log if it holds A+1..S, else by
// restoring the snapshot.
//
// # Raft only between members
//
// With Config.TLS the Raft port speaks mutual TLS 1.3 (tls.go, with
// certificates of package pki), and carries two protocols told apart by
// ALPN: Raft's RPCs (ProtoRaft), and the HTTP calls a follower makes to
// its leader (ProtoHTTP, served from TLS.Internal, made with
// HTTPClient). Every connection, accepted or dialed, is admitted only if
// the peer's certificate chains to the cluster's CA and names a node that
// is in the Raft configuration (a node that knows no configuration yet,
// being about to join, skips this) and that the side's TLS.Member admits:
// a member whose record holds that key's fingerprint. A stranger fails
// the handshake before Raft reads a byte; a removed or rekeyed member is
// refused at its next handshake, and its open connections are cut within
// a second (recheckLoop). Handshakes run in their own goroutines, at most
// maxHandshakes at once (maxHandshakesPerIP from one address) and each
// within handshakeTimeout, so a slow client holds no one else up.
//
// A node judges peers by its own store. A node that joins admits the
// members its join named until its store has caught up to its own record
// (SetJoinTrust). A follower that was away while another node was
// admitted refuses that node until the log reaches it from a member it
// knows: if the new node leads in the meantime, the follower waits for a
// leader it knows (a leadership transfer, or a restart of the leader).
//
// # Invariants
//
//   - The Applier applies each group of committed entries in one
//     transaction that also records the last applied index, so one fsync
//     covers the group and a crash never separates state from index. An
//     entry at or below the applied index is skipped: replay after a
//     restart changes nothing. Raft is therefore told not to restore a
//     snapshot at start-up: the store file already holds the state.
//   - Apply is deterministic: the proposer puts the time (and anything
//     random) into the command; the Applier reads no clock.
//   - An Applier error is a storage failure: the node panics rather than
//     fork from the others, and Raft replays the group after a restart. A
//     refused command is a result, not an error.
//   - Group commit is done once, here: commands proposed while earlier
//     groups are in flight are packed into one Batch entry (one log
//     append, one fsync, one replication message, one store transaction
//     for all of them); Raft's own BatchApplyCh is off.
//   - A new leader commits a command.Noop before it calls itself ready
//     (IsReady), so a leader that is ready has applied everything
//     committed before its term.
//   - Snapshots are the Applier's (bbolt files streamed from a read
//     transaction); Restore swaps in a whole file.
//   - A node that stops while it leads others hands leadership over
//     first.
//   - Config.Timing sets the failure detection (timing.go): pre-vote
//     stays on, so a follower that misses heartbeats does not move the
//     term while the others still hear their leader. Each node counts the
//     leader changes it sees (LeaderChanges, leaders.go).
//   - Config.Probe (probe.go): a follower that has not heard from its
//     leader for Probe.After connects to the leader's Raft port and
//     closes the connection unwritten. Only a refused connection (the
//     leader's process is gone) starts an election early; an accepted
//     one (a slow process) or none (a partition, perhaps of this
//     follower alone) is left to Timing and pre-vote.
//   - With Config.TLS, no Raft RPC and no internal HTTP call is read from
//     a peer that is not an admitted member at the time (see above).
package raftnode
