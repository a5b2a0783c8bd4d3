// Package pki is the certificate authority of an Outpost cluster (a site's
// appliances, or central's nodes) and the certificates its nodes present
// to one another: on the Raft port (internal/raftnode), for the calls a
// follower makes to its leader, and later for the API's HTTPS. Both sides
// use it, each with its own key and its own cluster name ("site",
// "central").
//
// # The CA is derived from the cluster's key
//
// Every member of a cluster already holds the cluster's secret key (the
// appliance's site key, central's key): it seals the secrets in the store
// and is handed, sealed, to a node that joins. The CA's Ed25519 key is
// derived from it (HKDF-SHA256 over a key derived for this purpose, with
// the cluster name and a generation number as info), and the CA
// certificate is built from fixed fields and signed deterministically, so
// every member computes the same CA certificate, byte for byte, with the
// same fingerprint. Nothing is distributed: a data directory of release
// b482c18, which has a site key and no CA, has its CA the moment the new
// release starts on it, and a joining node has it as soon as it has the
// key.
//
// The alternative, a random CA key kept in the replicated store sealed
// with the cluster key, protects nothing more: whoever holds the cluster
// key opens it, and the members (and every former member) hold that key.
// It would add a distribution step at bootstrap and after an upgrade, a
// window in which a node has no CA, and a secret in every snapshot. What
// excludes a node from the cluster is therefore not the CA but the member
// records: each records the fingerprint of the member's own public key,
// and a peer is admitted only if its certificate chains to the CA, names
// a current member, and carries that member's key (see Peer and the
// Verifier the caller gives). A removed member, whose record is deleted,
// is refused even though it could still compute the CA; denying it the
// sealed secrets too takes a rotation of the cluster key itself.
//
// The generation makes the CA itself replaceable: generation g+1 is a
// different key and certificate from the same secret, and an Authority
// derives whichever a node needs. The generation lives in the cluster's
// replicated store (Generations; a store that records none is at
// generation 1, Initial), and an operator rotates it in two steps, each
// a command of the log: begin makes g+1 current with g still trusted,
// and every node renews its certificate under g+1 and records that in
// its member record; finish, refused until every member has, drops g.
// A node trusts what its own store says (Generations.Trusted), plus the
// next generation, so that nodes that apply a step at different moments
// still admit one another.
//
// # Node certificates
//
// Each node makes its own Ed25519 key pair at its first start and keeps it
// in its data directory (KeyFile, mode 0600); the key never leaves the
// node. Its certificate (CertFile) names the node by a URI SAN,
// outpost://<cluster>/node/<id>, carries the node's addresses as IP or DNS
// SANs (so that it also serves as the node's HTTPS certificate), is valid
// for both server and client authentication, and is signed by the CA. A
// joining node gets its first certificate from the member that admits it;
// afterwards every member can renew its own (Identity.Renew), since it
// holds the CA.
//
// Fingerprints are the lowercase hex SHA-256 of the DER
// SubjectPublicKeyInfo of a node's public key (KeyFingerprint), as in
// RFC 7469: a renewed certificate for the same key keeps its fingerprint,
// so only a new key pair needs to be registered. The CA's fingerprint is
// the SHA-256 of its certificate (CA.Fingerprint), what an operator pins.
//
// # Mutual TLS
//
// ServerConfig and ClientConfig build TLS 1.3 configurations in which both
// sides present a certificate and both verify the other's: it must chain
// to a trusted CA generation, be valid now, name a node of the cluster,
// and pass the caller's Verifier (membership and fingerprint). Host names
// are not checked: Raft dials addresses, not names, and the identity that
// matters is the node id.
//
// # The API CA
//
// The HTTPS API (and the consoles served with it) is verified by browsers,
// the CLI and curl, not only by members, and Chromium accepts no Ed25519
// certificate in TLS. So each cluster has a second CA for its API
// (APICA): ECDSA P-256, derived the same way from the cluster key with
// its own purpose (APIKeyPurpose) and generation, its signature
// deterministic (RFC 6979), so that every node computes the same API CA,
// and the same fingerprint, without a Raft write; a node of the previous
// release has it as soon as it starts the new one. Operators pin its
// fingerprint, "sha256:" and the hex SHA-256 of its DER, printed at every
// start and served with its PEM (unauthenticated: a client checks it
// against the pin, never trusts it as given).
//
// Each node issues its own serving certificate (APIServer) for its API
// hosts and the loopback names, with a fresh key that never leaves
// memory, valid for ServingValidity and renewed at a handshake once a
// third of it is left; it presents the CA after it, so that a client
// pinning only the fingerprint finds the CA in the chain. A separate CA
// keeps the two trusts apart: a serving certificate cannot pass as a
// member on the Raft port (it names no node and chains to another CA),
// and the Raft CA's key signs nothing a browser sees.
//
// PinnedTLS is the one client configuration for a pinned API: the chain
// is verified against the pinned CA only, never the system's roots, and
// a mismatch names the expected and presented fingerprints.
//
// # Invariants
//
//   - The same key, cluster and generation give the same CA certificate,
//     and the same API CA certificate.
//   - A node's private key is written once, 0600, and never sent.
//   - A connection is only established after both sides' identities were
//     verified; a certificate whose chain, validity, cluster or node id
//     fails is refused before any application byte is read.
package pki
