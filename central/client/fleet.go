package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/apiclient"
)

// The fleet: every machine of every site as central derives it from the
// sites' events, and every site with its link (/v1/fleet/). The types
// mirror central's fleet model field for field (a test keeps them in
// step).

// Machine is one machine of one site, as central knows it.
type Machine struct {
	Site      string    `json:"site"`
	ID        string    `json:"id"`
	Hostname  string    `json:"hostname,omitempty"`
	MACs      []string  `json:"macs,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Power     string    `json:"power,omitempty"`
	Workflow  *Workflow `json:"workflow,omitempty"`
	LastOrder *Order    `json:"last_order,omitempty"`
	LastEvent *Event    `json:"last_event,omitempty"`
	Seq       uint64    `json:"seq,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Workflow is a machine's workflow as far as its events tell.
type Workflow struct {
	ID       string    `json:"id"`
	Purpose  string    `json:"purpose,omitempty"`
	Status   string    `json:"status"`
	Step     string    `json:"step,omitempty"`
	Done     int       `json:"done"`
	Total    int       `json:"total,omitempty"`
	Progress string    `json:"progress,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
}

// Order is a machine's last order: placed, delivered, waiting, running,
// succeeded or failed.
type Order struct {
	Key         string    `json:"key"`
	Action      string    `json:"action"`
	Image       string    `json:"image,omitempty"`
	ImageSHA256 string    `json:"image_sha256,omitempty"`
	By          string    `json:"by,omitempty"`
	Revision    uint64    `json:"revision,omitempty"`
	Placed      time.Time `json:"placed,omitzero"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	Updated     time.Time `json:"updated,omitzero"`
}

// Event is one event of a machine's timeline, the site's or central's.
type Event struct {
	Source  string            `json:"source"`
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Kind    string            `json:"kind"`
	Message string            `json:"message"`
	By      string            `json:"by,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// FleetSite is a site with its link to central and what it reports.
type FleetSite struct {
	ID        string            `json:"id"`
	Name      string            `json:"name,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Link      Link              `json:"link"`
	Appliance Appliance         `json:"appliance"`
	Machines  map[string]int    `json:"machines,omitempty"`
}

// Link is a site's link to central.
type Link struct {
	Connected     bool      `json:"connected"`
	Node          string    `json:"node,omitempty"`
	LastSeen      time.Time `json:"last_seen,omitzero"`
	Revision      uint64    `json:"revision"`
	AckedRevision uint64    `json:"acked_revision"`
	StoredSeq     uint64    `json:"stored_seq"`
	SiteLastSeq   uint64    `json:"site_last_seq"`
	EventsBehind  uint64    `json:"events_behind"`
}

// Appliance is what a site reports of its appliances.
type Appliance struct {
	Version  string    `json:"version,omitempty"`
	Nodes    int       `json:"nodes,omitempty"`
	Voters   int       `json:"voters,omitempty"`
	Healthy  int       `json:"healthy,omitempty"`
	Leader   string    `json:"leader,omitempty"`
	Console  string    `json:"console,omitempty"`
	Problems []string  `json:"problems,omitempty"`
	Reported time.Time `json:"reported,omitzero"`
}

// Summary is the fleet overview.
type Summary struct {
	Sites          int            `json:"sites"`
	SitesConnected int            `json:"sites_connected"`
	Machines       int            `json:"machines"`
	ByState        map[string]int `json:"by_state"`
	InFlight       []*Machine     `json:"in_flight"`
	InFlightTotal  int            `json:"in_flight_total"`
	Failures       []FailureGroup `json:"failures"`
}

// FailureGroup is the machines that failed for one reason.
type FailureGroup struct {
	Reason   string       `json:"reason"`
	Count    int          `json:"count"`
	Machines []MachineRef `json:"machines"`
}

// MachineRef names a machine of a site.
type MachineRef struct {
	Site string `json:"site"`
	ID   string `json:"id"`
}

// Page is one page of a machine search: Next is the cursor of the next
// one ("" at the end), Version the fleet's version it was read at.
type Page struct {
	Machines []*Machine `json:"machines"`
	Total    int        `json:"total"`
	Next     string     `json:"next,omitempty"`
	Version  uint64     `json:"version"`
}

// Machines answers one page (at most limit, 0: central's default) of
// the machines the fleet query q matches, from the cursor after ("":
// the first page).
func (c *Client) Machines(ctx context.Context, q string, limit int, after string) (*Page, error) {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		v.Set("after", after)
	}
	var p Page
	err := c.Do(ctx, http.MethodGet, withQuery("/v1/fleet/machines", v), nil, &p)
	return &p, err
}

// AllMachines reads every page of the machines q matches; the version is
// the first page's.
func (c *Client) AllMachines(ctx context.Context, q string) ([]*Machine, uint64, error) {
	var out []*Machine
	var version uint64
	after := ""
	for first := true; first || after != ""; first = false {
		p, err := c.Machines(ctx, q, 0, after)
		if err != nil {
			return nil, 0, err
		}
		if first {
			version = p.Version
		}
		out = append(out, p.Machines...)
		after = p.Next
	}
	return out, version, nil
}

// Machine reads one machine of the fleet.
func (c *Client) Machine(ctx context.Context, site, id string) (*Machine, error) {
	var m Machine
	err := c.Do(ctx, http.MethodGet, fleetMachinePath(site, id), nil, &m)
	return &m, err
}

// Timeline reads a machine's merged timeline, newest first, at most
// limit events (0: central's default).
func (c *Client) Timeline(ctx context.Context, site, id string, limit int) ([]Event, error) {
	v := url.Values{}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Events []Event `json:"events"`
	}
	err := c.Do(ctx, http.MethodGet, withQuery(fleetMachinePath(site, id)+"/timeline", v), nil, &out)
	return out.Events, err
}

func fleetMachinePath(site, id string) string {
	return "/v1/fleet/machines/" + url.PathEscape(site) + "/" + url.PathEscape(id)
}

// FleetSites lists the sites with their links and reports.
func (c *Client) FleetSites(ctx context.Context) ([]FleetSite, error) {
	var out struct {
		Sites []FleetSite `json:"sites"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/fleet/sites", nil, &out)
	return out.Sites, err
}

// Summary reads the fleet overview.
func (c *Client) Summary(ctx context.Context) (*Summary, error) {
	var s Summary
	err := c.Do(ctx, http.MethodGet, "/v1/fleet/summary", nil, &s)
	return &s, err
}

// Stream follows the fleet's changes from version since (0: from now)
// and calls fn with each new version, until ctx ends, fn fails or
// central ends the stream: then it returns, with the last version seen,
// which a caller resumes from (central answers it as Last-Event-ID).
func (c *Client) Stream(ctx context.Context, since uint64, fn func(version uint64) error) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.api.Base+"/v1/fleet/stream", nil)
	if err != nil {
		return since, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.api.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.api.Token)
	}
	if since > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(since, 10))
	}
	hc := *c.api.HTTP
	hc.Timeout = 0 // a stream lasts as long as ctx
	resp, err := hc.Do(req)
	if err != nil {
		return since, fmt.Errorf("client: fleet stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return since, apiclient.DecodeError(resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "id:")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(id), 10, 64)
		if err != nil {
			return since, fmt.Errorf("client: fleet stream: id %q: %w", id, err)
		}
		since = v
		if err := fn(v); err != nil {
			return since, err
		}
	}
	if ctx.Err() != nil {
		return since, ctx.Err()
	}
	return since, sc.Err()
}

// withQuery is path with v's query, if any.
func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}
