package site

import "github.com/outposthq/outpost/internal/tracing"

// Status describes the site's cluster as one node sees it (GET
// /v1/cluster).
type Status struct {
	ID           string `json:"id"`
	State        string `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID     string `json:"leader_id,omitempty"`
	LeaderAddr   string `json:"leader_addr,omitempty"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	LastIndex    uint64 `json:"last_log_index"`
	LastContact  string `json:"last_contact,omitempty"`
	// WriteProblem is why this node cannot write its Raft log (a full
	// disk), or "": such a node can neither commit nor lead.
	WriteProblem string         `json:"write_problem,omitempty"`
	Healthy      bool           `json:"healthy"`
	Problem      string         `json:"problem,omitempty"`
	Members      []MemberStatus `json:"members"`
	// CA is where the site's CA rotation stands.
	CA *CAStatus `json:"ca,omitempty"`
}

// CAStatus is where the site's CA rotation stands: the generation node
// certificates are issued under, whether a rotation is under way, and
// the CAs trusted (the previous generation's too while it is).
type CAStatus struct {
	Generation uint64   `json:"generation"`
	Rotating   bool     `json:"rotating"`
	CAs        []CAInfo `json:"cas"`
}

// CAInfo is one generation of the site's CA.
type CAInfo struct {
	Generation uint64 `json:"generation"`
	// Fingerprint is the SHA-256 of the CA's certificate.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// MemberStatus is one server of the cluster.
type MemberStatus struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	// Fingerprint is the member's key as its record pins it (empty: not
	// registered yet, a node of release b482c18).
	Fingerprint string `json:"fingerprint,omitempty"`
	// CAGeneration is the generation of the site's CA the member's
	// certificate is of, as its record reports it; Renewed says whether
	// it is the current one (a rotation's finish waits for every member).
	CAGeneration uint64 `json:"ca_generation"`
	Renewed      bool   `json:"renewed"`
}

// NodeSpans are spans one node of the site keeps (its tracing.Store),
// numbered there up to Last: what the leader gathers from every node to
// forward them to central.
type NodeSpans struct {
	Node  string         `json:"node"`
	Spans []tracing.Span `json:"spans"`
	Last  uint64         `json:"last"`
}
