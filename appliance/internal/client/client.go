// Package client is a Go client for the appliance API, used by the CLI,
// by joining nodes and by tests.
package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/apiclient"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/pki"
)

// Client talks to one appliance.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the API at base (http://host:port) using token.
func New(base, token string) *Client {
	return NewWithHTTP(base, token, &http.Client{Timeout: 60 * time.Second})
}

// Pin names the CA an appliance's HTTPS API is verified by: its
// fingerprint (sha256:..., printed by every node at start), the PEM file
// a node writes (<data-dir>/api-ca.pem), or both, which must agree.
// The zero Pin verifies by the system's roots.
type Pin struct {
	Fingerprint string
	CAFile      string
}

// NewPinned is New for an API whose CA is pinned (pki.PinnedTLS): the
// server's chain is verified against that CA alone, and a server that
// presents another is refused with an error naming both fingerprints.
func NewPinned(base, token string, pin Pin) (*Client, error) {
	if pin == (Pin{}) {
		return New(base, token), nil
	}
	t, err := PinnedTransport(pin)
	if err != nil {
		return nil, err
	}
	return NewWithHTTP(base, token, &http.Client{Timeout: 60 * time.Second, Transport: t}), nil
}

// PinnedTransport is a transport that verifies servers by pin (not the
// zero Pin), for a caller that dials its own way (a network namespace).
func PinnedTransport(pin Pin) (*http.Transport, error) {
	var pem []byte
	if pin.CAFile != "" {
		var err error
		if pem, err = os.ReadFile(pin.CAFile); err != nil {
			return nil, fmt.Errorf("client: CA file: %w", err)
		}
	}
	tc, err := pki.PinnedTLS(pin.Fingerprint, pem)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc
	return t, nil
}

// NewWithHTTP is New with a caller's HTTP client (a test reaching an
// appliance inside a network namespace dials through its own).
func NewWithHTTP(base, token string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc}
}

// Error is an error answer from the API (the shape both sides answer).
type Error = apiclient.Error

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (if not nil). Header pairs (name, value) may follow.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, header ...string) error {
	return c.api().Do(ctx, method, path, body, out, header...)
}

// DoStatus is Do with a body that is already JSON, returning the HTTP
// status of a successful answer too, so that a caller can tell a create
// (201) from a replace (200).
func (c *Client) DoStatus(ctx context.Context, method, path string, body json.RawMessage, out any) (int, error) {
	return c.send(ctx, method, path, body, out)
}

func (c *Client) send(ctx context.Context, method, path string, body json.RawMessage, out any, header ...string) (int, error) {
	return c.api().Send(ctx, method, path, body, out, header...)
}

// api is the shared JSON client over c's base, token and HTTP client.
func (c *Client) api() *apiclient.Client {
	return &apiclient.Client{Base: c.base, Token: c.token, HTTP: c.http}
}

// Put creates or replaces an object of kind plural ("machines") under key.
func (c *Client) Put(ctx context.Context, plural, key string, obj, out any) error {
	return c.Do(ctx, http.MethodPut, "/v1/"+plural+"/"+url.PathEscape(key), obj, out)
}

// Get reads one object.
func (c *Client) Get(ctx context.Context, plural, key string, out any) error {
	return c.Do(ctx, http.MethodGet, "/v1/"+plural+"/"+url.PathEscape(key), nil, out)
}

// List reads every object of a kind into out, a pointer to a slice.
func (c *Client) List(ctx context.Context, plural string, out any) error {
	var page struct{ Items json.RawMessage }
	if err := c.Do(ctx, http.MethodGet, "/v1/"+plural, nil, &page); err != nil {
		return err
	}
	return json.Unmarshal(page.Items, out)
}

// Delete removes one object.
func (c *Client) Delete(ctx context.Context, plural, key string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/"+plural+"/"+url.PathEscape(key), nil, nil)
}

// Events returns up to limit events after since, and the last sequence.
func (c *Client) Events(ctx context.Context, since uint64, limit int) ([]store.Event, uint64, error) {
	var page struct {
		Events  []store.Event `json:"events"`
		LastSeq uint64        `json:"last_seq"`
	}
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "limit": {strconv.Itoa(limit)}}
	err := c.Do(ctx, http.MethodGet, "/v1/events?"+q.Encode(), nil, &page)
	return page.Events, page.LastSeq, err
}

// Stream calls fn for each event after since, as they are committed, until
// ctx ends or fn returns an error.
func (c *Client) Stream(ctx context.Context, since uint64, fn func(store.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events/stream?since="+strconv.FormatUint(since, 10), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := *c.http
	hc.Timeout = 0 // a stream lasts as long as ctx
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: event stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return apiclient.DecodeError(resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e store.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return fmt.Errorf("client: event stream: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return sc.Err()
}

// Cluster returns the cluster status as the node asked sees it.
func (c *Client) Cluster(ctx context.Context) (site.Status, error) {
	var st site.Status
	err := c.Do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
	return st, err
}

// RotateCA takes a step of a rotation of the site's CA ("begin",
// "finish") and returns where the rotation stands.
func (c *Client) RotateCA(ctx context.Context, step string) (store.CA, error) {
	var ca store.CA
	err := c.Do(ctx, http.MethodPost, "/v1/cluster/ca/rotate", api.RotateCARequest{Step: step}, &ca)
	return ca, err
}

// Join asks the cluster to add a node as a voter.
func (c *Client) Join(ctx context.Context, req api.JoinRequest) (api.JoinResponse, error) {
	var resp api.JoinResponse
	err := c.Do(ctx, http.MethodPost, "/v1/cluster/join", req, &resp)
	return resp, err
}

// RemoveMember removes a node from the cluster (on the leader).
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil, nil)
}

// CreateToken makes an API token with a name, a role and an optional
// expiry. The answer holds its secret, which is never shown again.
func (c *Client) CreateToken(ctx context.Context, req httpapi.TokenRequest) (httpapi.TokenCreated, error) {
	var out httpapi.TokenCreated
	err := c.Do(ctx, http.MethodPost, "/v1/tokens", req, &out)
	return out, err
}

// DeleteToken deletes an API token: it opens nothing from then on.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// Tokens lists the API tokens: names, roles, expiries, never secrets.
func (c *Client) Tokens(ctx context.Context) ([]httpapi.TokenView, error) {
	var page struct {
		Items []httpapi.TokenView `json:"items"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/tokens", nil, &page)
	return page.Items, err
}

// BootPXE asks the site to set machine id's next boot to the network
// through its BMC (POST /v1/machines/{id}/boot-pxe) and returns the job
// that will, pending.
func (c *Client) BootPXE(ctx context.Context, id string, persistent, efi bool) (*store.Job, error) {
	var j store.Job
	body := map[string]bool{"persistent": persistent, "efi": efi}
	if err := c.Do(ctx, http.MethodPost, "/v1/machines/"+url.PathEscape(id)+"/boot-pxe", body, &j); err != nil {
		return nil, err
	}
	return &j, nil
}
