package store

import "github.com/outposthq/outpost/internal/errs"

// Member is one appliance of the site's cluster, as recorded when it
// joined. Raft's own configuration says who votes; Member adds what Raft
// does not know, such as where the node's API listens (for forwarding).
type Member struct {
	Meta
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
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
	return nil
}

// APIURL is the base URL of the member's API.
func (m *Member) APIURL() string { return m.APIAddr }
