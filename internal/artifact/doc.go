// Package artifact keeps content-addressed artifacts: OS images, installer
// kernels and initrds, iPXE binaries, firmware files. An artifact is its
// SHA-256 (a Digest) and never changes; a name (an image's) points at a
// digest and may be moved to another, which is the business of the
// callers, not of this package.
//
// It is shared by central and the appliance, which use it the same way:
//
//   - Store is a node's own directory of artifacts. A file appears under
//     its digest only once its bytes hashed to that digest, and only whole
//     (written beside it, synced, renamed), so whatever Store.Open returns
//     is exactly the artifact: nothing corrupt or partial is ever served.
//   - Store.Put takes an upload (central's operator); Store.Fetch pulls an
//     artifact over HTTP(S) from a source: an upstream URL, central, or a
//     peer node. A fetch that breaks resumes from the bytes it has, from
//     the same source or another (Range: the bytes of a digest are the
//     same everywhere, and the hash of the whole judges them); its
//     bandwidth may be capped; a transfer whose bytes do not hash to the
//     digest is thrown away whole and reported as a *CorruptError.
//   - Serve answers GET and HEAD of one artifact with Range and the digest
//     as a strong ETag; the file goes from the page cache to the socket
//     with sendfile(2).
//   - Replicator is the loop each node runs: it asks its caller for a Plan
//     (what this node should hold, and from which sources, in order; what
//     it may remove), fetches what is missing one at a time, reports each
//     arrival (the caller records it through Raft) and removes what the
//     plan says is garbage.
//
// # Layout on disk
//
//	<dir>/sha256/<64 hex>          whole, verified artifacts (0444)
//	<dir>/partial/<64 hex>         a fetch in progress, resumed from its length
//	<dir>/upload/<random>          an upload in progress (removed at Open)
//
// Nothing else is read from the directory; a file under sha256/ whose
// name is not a digest is ignored. Open does not rehash what is there
// (an artifact of 10 GiB would delay start-up by a minute): Verify does,
// on demand.
package artifact
