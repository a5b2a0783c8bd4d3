// Package store keeps all of central's state in one bbolt file: sites
// (their credentials only as SHA-256 hashes), the admin tokens, each
// site's desired state and its revisions, and the events each site sent.
//
// Invariants:
//
//   - Each change of a site's desired state (an order placed, a machine,
//     image or template put or deleted) is one transaction that updates
//     the current desired objects, appends a revision holding the change
//     and records the new latest revision on the site. Revisions are
//     numbered densely from 1 per site; the one exception is AdvancePast,
//     which skips numbers when a site has applied revisions central no
//     longer knows (central restored from an old backup): its revision is
//     a full snapshot, so nothing is lost by the gap.
//   - Only a site's latest keepRevisions revisions are kept; a site
//     further behind gets a full snapshot of the latest (NextRevisions).
//   - Every change is a Command applied by one deterministic function
//     (command.go): at once on a single central, or through the Raft log
//     of a replicated one (package replica), where ApplyLog records the
//     last index applied in the same transaction.
//   - A site's events are stored exactly once and in order: StoreEvents
//     reads the highest sequence stored (Site.StoredSeq), keeps only the
//     events after it (syncproto.Events.Unstored), appends them and
//     records the new highest in the same transaction.
//   - The cursors a site's sync status shows (latest revision, acked
//     revision, stored sequence) live in the site's record, written in the
//     same transaction as what they count.
//   - Secrets (site credentials, admin tokens) are stored only as hashes.
//
// Watchers learn of a site's new revisions and events through channels
// closed after each commit (WatchDesired, WatchEvents), without polling.
package store
