package store

import (
	"encoding/hex"
	"net"
	"net/url"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
)

// Member is one node of a replicated central: where its Raft transport
// and its API are, and the key it proves itself with on the Raft port.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIURL   string `json:"api_url"`
	// Fingerprint is the SHA-256 of the node's public key (lowercase
	// hex, internal/pki.KeyFingerprint): the only key its certificate may
	// carry. Empty for a member recorded by release b482c18 until the
	// node records its own (it does when it leads, and when it joins);
	// until then any certificate central's CA signed for its id is
	// accepted.
	Fingerprint string `json:"fingerprint,omitempty"`
	// CAGeneration is the generation of central's CA that signed the
	// node's certificate, as the node reports it: 0 in a record of an
	// older release, whose certificate is of generation 1.
	CAGeneration uint64 `json:"ca_generation,omitempty"`
}

// Generation is the CA generation of the member's certificate, 1 for a
// record that names none.
func (m *Member) Generation() uint64 { return max(m.CAGeneration, 1) }

// Validate checks a member record.
func (m *Member) Validate() error {
	if err := ValidSiteID("id", m.ID); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(m.RaftAddr); err != nil {
		return errs.Invalid("raft_addr", "%q is not host:port", m.RaftAddr)
	}
	if u, err := url.Parse(m.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errs.Invalid("api_url", "%q is not an http(s):// URL", m.APIURL)
	}
	if b, err := hex.DecodeString(m.Fingerprint); m.Fingerprint != "" && (err != nil || len(b) != 32 || hex.EncodeToString(b) != m.Fingerprint) {
		return errs.Invalid("fingerprint", "must be a SHA-256 in lowercase hex (64 characters)")
	}
	return nil
}

// PutMember records a member.
func (d *DB) PutMember(m *Member) error {
	if err := m.Validate(); err != nil {
		return err
	}
	_, err := d.exec(cmdPutMember, &putMemberPayload{Member: m})
	return err
}

// DeleteMember forgets a member.
func (d *DB) DeleteMember(id string) error {
	_, err := d.exec(cmdDeleteMember, &deleteMemberPayload{ID: id})
	return err
}

// Member returns the member with id.
func (d *DB) Member(id string) (*Member, error) {
	var m *Member
	err := d.view(func(tx *bolt.Tx) (err error) {
		if m, err = get[Member](tx.Bucket(bucketMembers), []byte(id)); err == nil && m == nil {
			err = errs.NotFound("member", id)
		}
		return err
	})
	return m, err
}

// Members returns every member in id order.
func (d *DB) Members() ([]*Member, error) {
	out := []*Member{}
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMembers).ForEach(func(k, _ []byte) error {
			m, err := get[Member](tx.Bucket(bucketMembers), k)
			if m != nil {
				out = append(out, m)
			}
			return err
		})
	})
	return out, err
}
