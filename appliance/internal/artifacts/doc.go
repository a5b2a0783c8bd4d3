// Package artifacts keeps on every node of the site every artifact the
// site's images point at (content-addressed: an OS image that is its
// sha256, an image the site pulls from an upstream URL, an installer's
// "sha256:" kernel and initrd), so that whichever node leads serves every
// image, and no install reaches past the site.
//
// Each node opens its own artifact.Store (<data_dir>/artifacts, or
// artifact_store) and runs an artifact.Replicator whose plan it draws
// from the replicated records (store.Artifact, kept by package site):
//
//   - It wants every digest an image points at. Its sources, in order:
//     the node's artifact directory for an image that is a file there;
//     the peers the record names as holding it, over the Raft port's
//     mutual TLS (InternalPath, served on every node by Handler); and,
//     on the leader only, central (each central node in turn, with the
//     site's credential, read again at each pass) and the image's
//     upstream URL. So a digest crosses the WAN once, on the leader, and
//     never again while any peer holds it; a follower waits for a peer.
//     A leader also waits while another node (a leader before it, whose
//     transfer goes on) reports pulling the digest, until that pull fails
//     or falls silent: leadership moving mid-pull does not start a
//     second transfer over the WAN.
//   - Each digest it comes to hold, verified (the store publishes only
//     what hashed to its digest), it records through Raft
//     (RecordArtifact): the first node to hold one makes it present at
//     the site and starts the orders that waited for it.
//   - It removes what no image has pointed at for longer than the grace
//     period, and what no record names (after the grace, by the file's
//     age), and records the removal (ForgetArtifact).
//   - Pulls from past the site are capped (artifact_wan_limit); the
//     leader reports their progress (every tenth, or half minute), their
//     failures and any corrupt transfer as events (ReportArtifact).
//
// The replicator wakes when the records or the images change (the
// store's artifact generation), when leadership moves, and every ten
// seconds; a node that was down catches up when it runs again.
//
// Records (the site's view of each artifact), Status and Everywhere
// (each node's own disk and transfer, the others' asked over the Raft
// port) and Collector make it visible: the API's /v1/artifacts, the
// console's overview, metrics. ArtifactPeers tells the boot service
// where to stream an artifact this node does not hold yet.
package artifacts
