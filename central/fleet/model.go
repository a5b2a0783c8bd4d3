// Package fleet is central's model of the fleet: every machine of every
// site with its current state, its last order and its last event, and
// every site with its link to central and the health it reports. It is
// derived from what central already receives exactly once (each site's
// events, in order, and the revisions of desired state central itself
// makes), so the derivation is exact: replaying a site's event stream
// gives the state the site itself holds.
//
// This file holds the model's types and the reader the API, the portal
// and the CLI use; the derivation (derive.go, pure) is beside it. The
// central store applies the derivation in the transactions that store
// what it derives from, keeps the records, and serves them through an
// in-memory index (store.Fleet, a Reader).
//
// It is not under central/internal because its types are the wire types
// of central's fleet API (/v1/fleet/): central's client (central/client)
// uses them as they are, so the two cannot drift apart. It is pure
// logic: it imports the standard library and the sync protocol only.
package fleet

import (
	"time"
)

// Machine is one machine of one site, as central knows it.
type Machine struct {
	// Site and ID name it: a machine id is unique within its site.
	Site string `json:"site"`
	ID   string `json:"id"`

	Hostname string   `json:"hostname,omitempty"`
	MACs     []string `json:"macs,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	// Hardware is its hardware class, the vendor and product the site's
	// discovery found ("" if central was not told).
	Hardware string `json:"hardware,omitempty"`
	// State is the site's machine state (discovered, ready,
	// provisioning, provisioned, failed, deprovisioning); Reason says
	// why, for failed.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// StateSince is when the state last changed (the time of the site's
	// event that changed it).
	StateSince time.Time `json:"state_since,omitzero"`
	// Power is what its BMC last reported ("on", "off"), if anything.
	Power string `json:"power,omitempty"`
	// Workflow is its current (or last) workflow's progress.
	Workflow *Workflow `json:"workflow,omitempty"`
	// LastOrder is the last order placed for it, at central or at the
	// site.
	LastOrder *Order `json:"last_order,omitempty"`
	// LastEvent is the site's last event about it.
	LastEvent *Event `json:"last_event,omitempty"`
	// Seq is the site's event sequence that last changed the record
	// (0: only central's own revisions have).
	Seq uint64 `json:"seq,omitempty"`
	// Updated is when the record last changed.
	Updated time.Time `json:"updated"`
}

// Workflow is a machine's workflow as far as its events tell.
type Workflow struct {
	ID string `json:"id"`
	// Purpose is provision or deprovision.
	Purpose string `json:"purpose,omitempty"`
	// Status is pending, running, succeeded, failed or timed_out.
	Status string `json:"status"`
	// Step is the action running now, or the last one that ran.
	Step string `json:"step,omitempty"`
	// Done of Total actions have ended.
	Done  int `json:"done"`
	Total int `json:"total,omitempty"`
	// Progress is the running action's last progress report
	// ("image.write 40%").
	Progress string `json:"progress,omitempty"`
	// Actions are its actions' statuses as far as its events tell, by
	// name (Done counts those that ended).
	Actions map[string]string `json:"actions,omitempty"`
	Started time.Time         `json:"started,omitzero"`
	Ended   time.Time         `json:"ended,omitzero"`
}

// Order statuses at central. An order placed at central is "placed"
// until its site acknowledges the revision that carries it
// ("delivered"); from then on it follows the site's events.
const (
	OrderPlaced    = "placed"
	OrderDelivered = "delivered"
	OrderWaiting   = "waiting"
	OrderRunning   = "running"
	OrderSucceeded = "succeeded"
	OrderFailed    = "failed"
)

// Order is a machine's last order.
type Order struct {
	Key    string `json:"key"`
	Action string `json:"action"`
	// Image is the image's name as ordered, ImageSHA256 the digest it
	// was resolved to.
	Image       string `json:"image,omitempty"`
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// By is who placed it: the name of the API token at central (or at
	// the site, for an order placed there).
	By string `json:"by,omitempty"`
	// Revision is the revision of the site's desired state that carries
	// it (0 for an order placed at the site).
	Revision uint64    `json:"revision,omitempty"`
	Placed   time.Time `json:"placed,omitzero"`
	// Status is one of the Order* statuses; Reason says why it failed
	// or what it waits for.
	Status  string    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
	// TraceID is the id of the order's trace (its order.place span's at
	// central; the site's, from the site's event's trace_id field, for
	// an order placed there), if it has one.
	TraceID string `json:"trace_id,omitempty"`
	// Spans counts the spans of its trace central has kept (of those
	// that name the machine: its site's, its installer's); each batch
	// of them changes the record, so a page that follows the fleet
	// redraws the order's waterfall as its spans arrive.
	Spans int `json:"spans,omitempty"`
}

// Event is one event of a machine's timeline: a site's event, or one of
// central's own (an order placed, a machine put), merged in time order.
type Event struct {
	// Source is "site" or "central".
	Source string `json:"source"`
	// Seq is the site's event sequence, or central's revision.
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Kind    string            `json:"kind"`
	Message string            `json:"message"`
	By      string            `json:"by,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Site is a site with its link to central and what it reports.
type Site struct {
	ID     string            `json:"id"`
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Link   Link              `json:"link"`
	// Appliance is what the site last reported of itself; zero if it
	// never has (or runs a release before the report).
	Appliance Appliance `json:"appliance"`
	// Machines counts its machines by state.
	Machines map[string]int `json:"machines,omitempty"`
}

// Link is a site's link to central.
type Link struct {
	// Connected says a central node holds the site's session now; Node
	// names it.
	Connected bool   `json:"connected"`
	Node      string `json:"node,omitempty"`
	// LastSeen is when the site last connected, disconnected or
	// reported.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Revision is the site's latest desired revision, AckedRevision the
	// last it applied.
	Revision      uint64 `json:"revision"`
	AckedRevision uint64 `json:"acked_revision"`
	// StoredSeq is the highest event sequence central stored;
	// SiteLastSeq the site's newest as it last said; EventsBehind their
	// difference.
	StoredSeq    uint64 `json:"stored_seq"`
	SiteLastSeq  uint64 `json:"site_last_seq"`
	EventsBehind uint64 `json:"events_behind"`
}

// Appliance is what a site reports of its appliances.
type Appliance struct {
	// Version is the release of the reporting node (the leader).
	Version string `json:"version,omitempty"`
	// Nodes, Voters and Healthy count the site's cluster members, the
	// voting ones, and those the leader hears from; Leader names it.
	Nodes   int    `json:"nodes,omitempty"`
	Voters  int    `json:"voters,omitempty"`
	Healthy int    `json:"healthy,omitempty"`
	Leader  string `json:"leader,omitempty"`
	// Console is the URL of the site's own console, which the portal
	// links to for a machine's serial line ("" if it did not say).
	Console string `json:"console,omitempty"`
	// Problems says what is wrong, in words ("node a2 unreachable").
	Problems []string  `json:"problems,omitempty"`
	Reported time.Time `json:"reported,omitzero"`
}

// Summary is the fleet overview.
type Summary struct {
	Sites          int            `json:"sites"`
	SitesConnected int            `json:"sites_connected"`
	Machines       int            `json:"machines"`
	ByState        map[string]int `json:"by_state"`
	// InFlight are the machines with an order not yet ended, longest
	// running first (at most a page of them; InFlightTotal counts all).
	InFlight      []*Machine `json:"in_flight"`
	InFlightTotal int        `json:"in_flight_total"`
	// Failures are the machines that failed in the last day, grouped by
	// reason, the largest group first.
	Failures []FailureGroup `json:"failures"`
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

// Page is one page of a machine search.
type Page struct {
	Machines []*Machine `json:"machines"`
	// Total counts every machine the query matched.
	Total int `json:"total"`
	// Next is the cursor of the next page ("" at the end).
	Next string `json:"next,omitempty"`
	// Version is the fleet's version the page was read at (see Reader).
	Version uint64 `json:"version"`
}

// Reader is what the API, the portal and the CLI read the fleet
// through. Queries are machinequery's grammar with site: and label:
// terms (label:region=eu matches the machines of sites so labelled).
type Reader interface {
	// Machines answers one page (at most limit, from cursor after) of the
	// machines q matches, ordered by site, then id. A query it cannot
	// read is an error naming the term.
	Machines(q string, limit int, after string) (*Page, error)
	// Machine answers one machine (errs.ErrNotFound if unknown).
	Machine(site, id string) (*Machine, error)
	// Timeline answers the machine's merged timeline, newest first, at
	// most limit entries.
	Timeline(site, id string, limit int) ([]Event, error)
	// Sites answers every site, by id.
	Sites() ([]*Site, error)
	// Summary answers the overview as of now.
	Summary(now time.Time) (*Summary, error)
	// Version is a number that grows with every change of the fleet;
	// Changed is closed at the next change (a new channel each time).
	Version() uint64
	Changed() <-chan struct{}
}
