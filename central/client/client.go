// Package client is a Go client of central's API (central/README.md), for
// the outpost CLI and for tests. It is the one package of central that
// others may import: it depends on the wire types both sides share
// (syncproto, internal/httpapi) and on nothing of central's internals,
// whose answers it reads as JSON into the types below (a test keeps them
// in step with the server).
//
// The caller gives the *http.Client, and with it the transport's TLS
// configuration: a pinned CA plugs in there.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/apiclient"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Client talks to one central (any node of a replicated one).
type Client struct {
	api apiclient.Client
}

// Error is an error answer from central.
type Error = apiclient.Error

// New returns a client of the API at base ("https://host:port") using
// token. hc sends the requests (its transport holds the TLS
// configuration); nil means a client with a 60-second timeout and the
// system's roots.
func New(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{api: apiclient.Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: hc}}
}

// Do sends a request with an optional body (encoded as JSON) and decodes
// the answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.api.Do(ctx, method, path, body, out)
}

// DoStatus is Do with a body that is already JSON, returning the HTTP
// status of a successful answer.
func (c *Client) DoStatus(ctx context.Context, method, path string, body json.RawMessage, out any) (int, error) {
	return c.api.Send(ctx, method, path, body, out)
}

// Site is a site as central shows it: never its credential.
type Site struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	Sync      SyncStatus `json:"sync"`
	// Artifacts is what central sent the site of its artifacts.
	Artifacts SiteArtifacts `json:"artifacts"`
	// Labels describe the site (region=eu): central's image catalogue
	// places its images by them.
	Labels map[string]string `json:"labels,omitempty"`
}

// SyncStatus is where a site's sync stands.
type SyncStatus struct {
	Connected      bool      `json:"connected"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	Remote         string    `json:"remote,omitempty"`
	// LastSeen is when central last heard from the site.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LatestRevision is the site's latest desired revision, and
	// AckedRevision the last one the site acknowledged.
	LatestRevision uint64 `json:"latest_revision"`
	AckedRevision  uint64 `json:"acked_revision"`
	// StoredSeq is the highest event sequence central stored.
	StoredSeq uint64     `json:"stored_seq"`
	LostSeqs  []SeqRange `json:"lost_seqs,omitempty"`
}

// SeqRange is a range of event sequences, first to last.
type SeqRange struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// SiteCreated is the answer to creating a site: the site, and the
// credential it syncs with, shown only here.
type SiteCreated struct {
	Site       Site   `json:"site"`
	Credential string `json:"credential"`
}

// Sites lists the sites.
func (c *Client) Sites(ctx context.Context) ([]Site, error) {
	var page struct {
		Sites []Site `json:"sites"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/sites", nil, &page)
	return page.Sites, err
}

// Site reads one site.
func (c *Client) Site(ctx context.Context, id string) (Site, error) {
	var s Site
	err := c.Do(ctx, http.MethodGet, "/v1/sites/"+url.PathEscape(id), nil, &s)
	return s, err
}

// CreateSite creates a site; the answer holds its credential.
func (c *Client) CreateSite(ctx context.Context, id, name string) (SiteCreated, error) {
	return c.CreateSiteWithLabels(ctx, id, name, nil)
}

// CreateSiteWithLabels creates a site with labels: central places the
// catalogue's images that match them at once.
func (c *Client) CreateSiteWithLabels(ctx context.Context, id, name string, labels map[string]string) (SiteCreated, error) {
	var out SiteCreated
	body := map[string]any{"id": id, "name": name}
	if len(labels) > 0 {
		body["labels"] = labels
	}
	err := c.Do(ctx, http.MethodPost, "/v1/sites", body, &out)
	return out, err
}

// sitePath is the path of a site's objects of kind plural ("orders"),
// or of one of them if key is not "".
func sitePath(site, plural, key string) string {
	p := "/v1/sites/" + url.PathEscape(site) + "/" + plural
	if key != "" {
		p += "/" + url.PathEscape(key)
	}
	return p
}

// Put puts an object of kind plural (orders, machines, images, templates)
// into a site's desired state as JSON and returns the revision that
// carries it.
func (c *Client) Put(ctx context.Context, site, plural, key string, obj json.RawMessage) (uint64, error) {
	var out struct {
		Revision uint64 `json:"revision"`
	}
	_, err := c.DoStatus(ctx, http.MethodPut, sitePath(site, plural, key), obj, &out)
	return out.Revision, err
}

// Get reads one object of a site's desired state, as central shows it.
func (c *Client) Get(ctx context.Context, site, plural, key string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.Do(ctx, http.MethodGet, sitePath(site, plural, key), nil, &raw)
	return raw, err
}

// List reads a site's objects of kind plural.
func (c *Client) List(ctx context.Context, site, plural string) ([]json.RawMessage, error) {
	var page map[string][]json.RawMessage
	if err := c.Do(ctx, http.MethodGet, sitePath(site, plural, ""), nil, &page); err != nil {
		return nil, err
	}
	return page[plural], nil
}

// Delete deletes an object of a site's desired state and returns the
// revision that carries the delete.
func (c *Client) Delete(ctx context.Context, site, plural, key string) (uint64, error) {
	var out struct {
		Revision uint64 `json:"revision"`
	}
	err := c.Do(ctx, http.MethodDelete, sitePath(site, plural, key), nil, &out)
	return out.Revision, err
}

// CreateToken makes an API token with a name, a role and an optional
// expiry. The answer holds its secret, which is never shown again.
func (c *Client) CreateToken(ctx context.Context, req httpapi.TokenRequest) (httpapi.TokenCreated, error) {
	var out httpapi.TokenCreated
	err := c.Do(ctx, http.MethodPost, "/v1/tokens", req, &out)
	return out, err
}

// Tokens lists the API tokens: names, roles, expiries, never secrets.
func (c *Client) Tokens(ctx context.Context) ([]httpapi.TokenView, error) {
	var page struct {
		Items []httpapi.TokenView `json:"items"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/tokens", nil, &page)
	return page.Items, err
}

// DeleteToken deletes an API token: it opens nothing from then on.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// ClusterStatus is a node's view of a replicated central.
type ClusterStatus struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	Leader       string   `json:"leader,omitempty"`
	LeaderAPI    string   `json:"leader_api,omitempty"`
	AppliedIndex uint64   `json:"applied_index"`
	CommitIndex  uint64   `json:"commit_index"`
	Voters       []string `json:"voters"`
	Members      []Member `json:"members"`
	// CA is where the rotation of central's CA stands.
	CA CAStatus `json:"ca"`
}

// CAStatus is where the rotation of central's CA stands: the generation
// node certificates are issued under, whether a rotation is under way,
// the CAs trusted, and the members not yet renewed under the current one.
type CAStatus struct {
	Generation uint64   `json:"generation"`
	Rotating   bool     `json:"rotating"`
	CAs        []CAInfo `json:"cas"`
	NotRenewed []string `json:"not_renewed,omitempty"`
}

// CAInfo is one generation of central's CA and its certificate's SHA-256.
type CAInfo struct {
	Generation  uint64 `json:"generation"`
	Fingerprint string `json:"fingerprint"`
}

// Member is a member record: the node's addresses and the key (its
// SHA-256) its certificate must carry.
type Member struct {
	ID          string `json:"id"`
	RaftAddr    string `json:"raft_addr"`
	APIURL      string `json:"api_url"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// CAGeneration is the generation of central's CA its certificate is
	// from (0: a record from before rotations, generation 1).
	CAGeneration uint64 `json:"ca_generation,omitempty"`
}

// CA is where a rotation of central's CA stands after a step: the
// current generation, and the previous one while it is still trusted.
type CA struct {
	Generation uint64 `json:"generation"`
	Previous   uint64 `json:"previous,omitempty"`
	Time       string `json:"time,omitempty"`
	By         string `json:"by,omitempty"`
}

// RotateCA takes a step ("begin" or "finish") of a rotation of central's
// CA. A central that is not replicated answers a conflict (IsSingle).
func (c *Client) RotateCA(ctx context.Context, step string) (CA, error) {
	var ca CA
	err := c.Do(ctx, http.MethodPost, "/v1/cluster/ca/rotate", map[string]string{"step": step}, &ca)
	return ca, err
}

// Cluster returns the cluster as the node asked sees it. A central that
// is not replicated answers a conflict (IsSingle).
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var st ClusterStatus
	err := c.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
	return st, err
}

// IsSingle reports whether err is the answer of a central that runs as
// a single node to a cluster request.
func IsSingle(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// RemoveMember removes a node from a replicated central.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil, nil)
}
