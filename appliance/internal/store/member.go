package store

import (
	"encoding/hex"

	"github.com/outposthq/outpost/internal/errs"
)

// Member is one appliance of the site's cluster, as recorded when it
// joined. Raft's own configuration says who votes; Member adds what Raft
// does not know: where the node's API listens, and the key it proves
// itself with on the Raft port.
type Member struct {
	Meta
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	// Fingerprint is the SHA-256 of the node's public key (lowercase
	// hex, internal/pki.KeyFingerprint): the only key its certificate may
	// carry. Empty for a member recorded by release b482c18 until the
	// node registers its key (cluster.Node.RegisterSelf); until then any
	// certificate the site's CA signed for its id is accepted.
	Fingerprint string `json:"fingerprint,omitempty"`
	// NextFingerprint is the key the node is rotating to
	// (cluster.Node.RotateKey): while it is set, either key is accepted.
	NextFingerprint string `json:"next_fingerprint,omitempty"`
	// CAGeneration is the generation of the site's CA that signed the
	// node's certificate, as the node reports it (CA): 0 in a record of
	// an older release, whose certificate is of generation 1.
	CAGeneration uint64 `json:"ca_generation,omitempty"`
	// Commands is the highest command type the node's release applies,
	// as the node reports it (cluster.Node): the leader proposes a
	// command type newer than the last release that did not report it
	// only once every member's record says it knows the type. 0 in a
	// record of an older release, or one an older node stored (it drops
	// the field; the node reports again at each leader change).
	Commands uint8 `json:"commands,omitempty"`
}

// Generation is the CA generation of the member's certificate, 1 for a
// record that names none.
func (m *Member) Generation() uint64 {
	return max(m.CAGeneration, 1)
}

func (*Member) Kind() string   { return "member" }
func (m *Member) Key() string  { return m.ID }
func (*Member) bucket() []byte { return bucketMembers }

// Validate checks the member record.
func (m *Member) Validate() error {
	if err := validName("id", m.ID); err != nil {
		return err
	}
	if m.RaftAddr == "" {
		return errs.Invalid("raft_addr", "is required")
	}
	if m.APIAddr == "" {
		return errs.Invalid("api_addr", "is required")
	}
	if !validFingerprint(m.Fingerprint) {
		return errs.Invalid("fingerprint", "must be a SHA-256 in lowercase hex (64 characters)")
	}
	if !validFingerprint(m.NextFingerprint) || m.NextFingerprint != "" && m.Fingerprint == "" {
		return errs.Invalid("next_fingerprint", "must be a SHA-256 in lowercase hex (64 characters), beside a fingerprint")
	}
	return nil
}

// validFingerprint accepts "" and a SHA-256 in lowercase hex.
func validFingerprint(fp string) bool {
	b, err := hex.DecodeString(fp)
	return fp == "" || err == nil && len(b) == 32 && hex.EncodeToString(b) == fp
}

// APIURL is the base URL of the member's API.
func (m *Member) APIURL() string { return m.APIAddr }
