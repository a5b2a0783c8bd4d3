package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/apiclient"
)

// Artifact is an artifact of central's catalogue as central shows it: an
// immutable blob named by its SHA-256, the central nodes that hold it,
// and the sites that use it.
type Artifact struct {
	SHA256      string         `json:"sha256"`
	Size        int64          `json:"size_bytes"`
	Name        string         `json:"name,omitempty"`
	Description string         `json:"description,omitempty"`
	Type        string         `json:"type"`
	Source      ArtifactSource `json:"source"`
	CreatedAt   time.Time      `json:"created_at"`
	CreatedBy   string         `json:"created_by,omitempty"`
	// State is "present" (a central node holds it), "fetching" (none
	// does yet: the leader fetches it from its URL) or "missing".
	State string `json:"state"`
	// Progress is the fetch under way on the node that answered.
	Progress *ArtifactProgress `json:"progress,omitempty"`
	// Error says why no node holds it and none will, if so: its upstream
	// URL does not serve what was registered.
	Error string `json:"error,omitempty"`
	// Nodes are the central nodes that hold it.
	Nodes []string `json:"nodes"`
	// Sites are the sites whose desired images name it, or that central
	// sent bytes of it to.
	Sites []ArtifactSite `json:"sites"`
}

// ArtifactSource is where an artifact came from: an upload (the name of
// its token) or an upstream URL (without its query, which may hold a
// credential).
type ArtifactSource struct {
	Upload string `json:"upload,omitempty"`
	URL    string `json:"url,omitempty"`
}

// ArtifactProgress is a fetch under way.
type ArtifactProgress struct {
	Node      string `json:"node"`
	Source    string `json:"source"`
	HeldBytes int64  `json:"held_bytes"`
	SizeBytes int64  `json:"size_bytes"`
}

// ArtifactSite is one site's use of an artifact: the images that name
// it, and what central sent the site of it.
type ArtifactSite struct {
	Site      string   `json:"site"`
	Images    []string `json:"images,omitempty"`
	SentBytes int64    `json:"sent_bytes"`
}

// SiteArtifacts is what central sent a site of its artifacts.
type SiteArtifacts struct {
	SentBytes int64 `json:"sent_bytes"`
}

// RegisterArtifactRequest registers an upstream URL: central's leader
// fetches it once, checks its digest and size, and every central node
// copies it.
type RegisterArtifactRequest struct {
	URL         string `json:"url"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size_bytes"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Type        string `json:"type,omitempty"`
}

// PushOptions describe an artifact pushed.
type PushOptions struct {
	// SHA256, if set, is the digest the bytes must have: central refuses
	// (and keeps nothing of) an upload that hashes otherwise.
	SHA256 string
	// Name, Description and Type (os, kernel, initrd, file) describe it.
	Name, Description, Type string
	// Progress, if set, is called as bytes are sent, with the bytes sent
	// so far.
	Progress func(sent int64)
}

// PushArtifact uploads an artifact of size bytes (negative: unknown, sent
// chunked) read from r, streaming it, and returns its record. The upload
// has no overall timeout (the HTTP client's is not applied): ctx ends it,
// and central cuts one that stalls.
func (c *Client) PushArtifact(ctx context.Context, r io.Reader, size int64, opt PushOptions) (Artifact, error) {
	q := url.Values{}
	for k, v := range map[string]string{"sha256": opt.SHA256, "name": opt.Name, "description": opt.Description, "type": opt.Type} {
		if v != "" {
			q.Set(k, v)
		}
	}
	body := r
	if opt.Progress != nil {
		body = NewProgressReader(r, opt.Progress)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.api.Base+"/v1/artifacts?"+q.Encode(), io.NopCloser(body))
	if err != nil {
		return Artifact{}, fmt.Errorf("client: %w", err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+c.api.Token)
	hc := *c.api.HTTP
	hc.Timeout = 0
	var out Artifact
	return out, c.answer(&hc, req, &out)
}

// answer sends req with hc and decodes a JSON answer into out, or the
// error answer.
func (c *Client) answer(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("client: read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return apiclient.DecodeError(resp.StatusCode, raw)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("client: decode answer: %w", err)
	}
	return nil
}

// NewProgressReader returns a reader of r that calls fn with the bytes
// read so far, at most every 100 ms, and at the end (or an error).
func NewProgressReader(r io.Reader, fn func(n int64)) io.Reader {
	return &progressReader{r: r, fn: fn}
}

type progressReader struct {
	r    io.Reader
	n    int64
	fn   func(int64)
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); err != nil || now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.fn(p.n)
	}
	return n, err
}

// RegisterArtifact registers an upstream URL as an artifact.
func (c *Client) RegisterArtifact(ctx context.Context, req RegisterArtifactRequest) (Artifact, error) {
	var out Artifact
	err := c.Do(ctx, http.MethodPost, "/v1/artifacts/register", &req, &out)
	return out, err
}

// Artifacts lists central's catalogue.
func (c *Client) Artifacts(ctx context.Context) ([]Artifact, error) {
	var page struct {
		Artifacts []Artifact `json:"artifacts"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/artifacts", nil, &page)
	return page.Artifacts, err
}

// Artifact reads one artifact's record; digest is "<hex>" or
// "sha256:<hex>".
func (c *Client) Artifact(ctx context.Context, digest string) (Artifact, error) {
	var out Artifact
	err := c.Do(ctx, http.MethodGet, artifactPath(digest), nil, &out)
	return out, err
}

// DeleteArtifact deletes an artifact from central: refused while a
// site's image names it.
func (c *Client) DeleteArtifact(ctx context.Context, digest string) error {
	return c.Do(ctx, http.MethodDelete, artifactPath(digest), nil, nil)
}

// ArtifactContent downloads an artifact's bytes from the node asked,
// from byte from on (a Range request when from > 0). The caller closes
// the body. It has no overall timeout: ctx ends it.
func (c *Client) ArtifactContent(ctx context.Context, digest string, from int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.api.Base+artifactPath(digest)+"/content", nil)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.api.Token)
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
	}
	hc := *c.api.HTTP
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", req.URL.Path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, apiclient.DecodeError(resp.StatusCode, raw)
	}
	return resp.Body, nil
}

func artifactPath(digest string) string {
	return "/v1/artifacts/" + url.PathEscape(strings.TrimPrefix(strings.ToLower(digest), "sha256:"))
}
