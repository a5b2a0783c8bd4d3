// Package syncclient is the appliance's side of the sync with central
// (package syncproto is the protocol and its specification).
//
// A Client runs on every node but works only on the Raft leader: when
// its node becomes the ready leader it connects out to central, and it
// ends the connection when the node stops leading. Between connections
// it waits with exponential backoff and jitter, long after central
// refused the site (unauthorized, incompatible_version, conflict), which
// needs an operator.
//
// Invariants:
//
//   - The store holds both cursors, replicated by Raft: the applied
//     revision (recorded by the ApplyDesired command in the transaction
//     that applies the revision) and the acknowledged event sequence
//     (SyncAcked, which never goes back). The hello reads them from the
//     store, so the client resumes after its own restart, a leader
//     change or a cut connection from wherever the site is.
//   - Each complete revision is one ApplyDesired command; the state
//     machine skips a revision it has applied, so a revision received
//     twice (two nodes that both believed they led) applies once. The
//     client acknowledges a revision only once it is committed.
//   - Events are the outbox: the client sends them in order from the
//     welcome's stored_seq+1, never deletes them, and records central's
//     acknowledgements. Central stores only the next sequence, so
//     nothing arrives twice or out of order.
//   - The credential is read from its file at each connection and
//     written only into the hello frame; it is never logged. The frame
//     goes only to a central whose certificate verifies (the system's
//     roots, or Config.RootCAs): ws:// and http:// URLs are refused
//     unless Config.Insecure is set, for labs.
//   - The leader records the link in the store for every node's console
//     (link.go, the site's RecordLink): when it comes up or goes down,
//     when a new leadership's first session connects or fails, and when
//     the record says otherwise (a late report of an old leader); the
//     last exchange and a new reason for a link still down at most every
//     ReportEvery. A session that ends because the node stopped leading
//     records nothing: the next leader reports its own.
//   - BMC passwords that central sends in the clear are sealed with the
//     site key before they are proposed: the Raft log never holds them.
package syncclient
