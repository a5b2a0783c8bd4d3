package fleet

import (
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/syncproto"
)

// The derivation. A machine's record is a fold of its site's events, in
// the order the site recorded them (Apply), and of central's own
// revisions that place orders for it (PlaceOrder, Delivered). It is
// pure: it reads no clock and no store, so that every central node
// applying the same commands holds the same records (central's store
// applies it in the transaction that stores the events).
//
// The site's events say the new value of everything the record holds
// (appliance/internal/site/fleet.go says which event carries what; a
// few say it in their message, as the site has always written it):
//
//	machine.created, machine.updated,
//	machine.discovered            the record (state, reason, hostname, macs, tags, power)
//	machine.deleted               the record is gone
//	machine.state                 the state ("to") and, in its message, the reason
//	power.on, power.off           the power
//	workflow.created              a new current workflow (its actions counted in the message):
//	                              the machine provisions (or deprovisions)
//	workflow.*, action.*          the current workflow's status and its actions' (done counts
//	                              the ended ones); the machine follows the workflow's status as
//	                              the site's does (followWorkflow)
//	order.created, order.started,
//	order.waiting                 the last order, running or waiting (why, in the message)
//	order.succeeded, order.failed,
//	sync.order_refused            the last order's end (why, in the message or "reason")
//
// An event about a machine central holds no record of is one about a
// machine the site has deleted (a job's or workflow's end after it), and
// changes nothing; but one that only an existing machine records
// (machine.updated, machine.state, power.*) makes a record, for a machine
// created before central stored its events.

// SiteEvent is one event as the site recorded it: the JSON of the
// appliance's store.Event, which central stores as syncproto.Event.Data.
type SiteEvent struct {
	Seq       uint64            `json:"seq"`
	Time      time.Time         `json:"time"`
	MachineID string            `json:"machine_id,omitempty"`
	Kind      string            `json:"kind"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	By        string            `json:"by,omitempty"`
}

// Apply folds e, the next event of site, into m, the record of e's
// machine (nil if central holds none), and returns the record after it
// (nil if there is none) and whether it changed. m is not modified: a
// changed record is a copy.
func Apply(site string, m *Machine, e *SiteEvent) (*Machine, bool) {
	if e.MachineID == "" {
		return m, false
	}
	f := e.Fields
	switch e.Kind {
	case "machine.deleted":
		return nil, m != nil
	case "machine.created":
		// A new machine: nothing of one deleted before it, but the
		// order central placed for it while only central knew it.
		m = reported(m)
	case "machine.discovered":
		if f["created"] == "true" {
			m = nil
		}
	case "machine.updated", "machine.state", "power.on", "power.off":
	default:
		if m == nil {
			return nil, false
		}
	}
	if m == nil {
		m = &Machine{Site: site, ID: e.MachineID}
	} else {
		m = m.clone()
	}
	apply(m, e, f)
	m.LastEvent = &Event{Source: SourceSite, Seq: e.Seq, Time: e.Time, Kind: e.Kind, Message: e.Message, By: e.By, Fields: e.Fields}
	m.Seq, m.Updated = e.Seq, e.Time
	return m, true
}

// Event sources.
const (
	SourceSite    = "site"
	SourceCentral = "central"
)

// apply applies e's meaning to m.
func apply(m *Machine, e *SiteEvent, f map[string]string) {
	switch e.Kind {
	case "machine.created", "machine.updated", "machine.discovered":
		setRecord(m, f, e.Time)
	case "machine.state":
		m.setState(f["to"], stateReason(e), e.Time)
	case "power.on", "power.off":
		m.Power = e.Kind[len("power."):]
	case "workflow.created":
		m.Workflow = &Workflow{ID: f["workflow"], Purpose: f["purpose"], Status: "pending", Total: actionCount(e.Message)}
		m.follow(e.Time)
	case "order.created", "order.started", "order.waiting":
		orderBegins(m, e, f)
	case "order.succeeded", "order.failed", "sync.order_refused":
		orderEnds(m, e, f)
	default:
		if strings.HasPrefix(e.Kind, "workflow.") || strings.HasPrefix(e.Kind, "action.") {
			workflowStep(m, e, f)
		}
	}
}

// stateReason is the reason a machine.state event gives: its message is
// "machine <id>: <from> → <to>", then ": <reason>" if there is one.
func stateReason(e *SiteEvent) string {
	prefix := "machine " + e.MachineID + ": " + e.Fields["from"] + " → " + e.Fields["to"] + ": "
	reason, _ := strings.CutPrefix(e.Message, prefix)
	if reason == e.Message {
		return ""
	}
	return reason
}

// actionCount is the number of actions workflow.created's message gives:
// "workflow <id> created from template <name> (<n> actions)".
func actionCount(msg string) int {
	rest, ok := strings.CutSuffix(msg, " actions)")
	if !ok {
		return 0
	}
	i := strings.LastIndexByte(rest, '(')
	n, _ := strconv.Atoi(rest[i+1:])
	return n
}

// messageAfter is what msg says after prefix ("" if it does not start
// with it).
func messageAfter(msg, prefix string) string {
	rest, ok := strings.CutPrefix(msg, prefix)
	if !ok {
		return ""
	}
	return rest
}

// setRecord sets what a machine put or discovery says of it.
func setRecord(m *Machine, f map[string]string, t time.Time) {
	if s, ok := f["state"]; ok {
		m.setState(s, f["reason"], t)
	} else if m.State == "" {
		m.setState("discovered", "", t) // a discovery of a release before the record's fields
	}
	m.Hostname = f["hostname"]
	m.MACs = jsonList(f["macs"])
	if len(m.MACs) == 0 && f["mac"] != "" {
		m.MACs = []string{f["mac"]}
	}
	m.Tags = jsonList(f["tags"])
	m.Power = f["power"]
	if v, p := f["vendor"], f["product"]; v != "" || p != "" {
		m.Hardware = strings.TrimSpace(v + " " + p)
	}
}

func jsonList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	if json.Unmarshal([]byte(s), &out) != nil || len(out) == 0 {
		return nil
	}
	return out
}

// setState sets the machine's state and reason, and when its state
// changed.
func (m *Machine) setState(state, reason string, t time.Time) {
	if state != m.State {
		m.StateSince = t
	}
	m.State, m.Reason = state, reason
}

// workflowStep applies a transition of a workflow (workflow.* or
// action.*) if it is the machine's current one.
func workflowStep(m *Machine, e *SiteEvent, f map[string]string) {
	w := m.Workflow
	if w == nil || w.ID != f["workflow"] {
		return
	}
	if a := f["action"]; a != "" {
		w.Step, w.Progress = a, ""
		if e.Kind == "action.progress" {
			w.Progress = a + " " + f["progress"] + "%"
			return
		}
		if w.Actions == nil {
			w.Actions = map[string]string{}
		} else {
			w.Actions = maps.Clone(w.Actions)
		}
		w.Actions[a] = f["to"]
		w.Done = 0
		for _, st := range w.Actions {
			if final(st) {
				w.Done++
			}
		}
		return
	}
	status := f["to"]
	if status == "" || status == w.Status {
		return
	}
	w.Status = status
	if status == "running" && w.Started.IsZero() {
		w.Started = e.Time
	}
	if final(status) {
		w.Ended = e.Time
	}
	m.follow(e.Time)
}

// follow sets the machine's state from its current workflow's status, as
// the site does (appliance/internal/site followWorkflow); the reason of a
// failure is the next event's, machine.state.
func (m *Machine) follow(t time.Time) {
	w := m.Workflow
	deprovision := w.Purpose == "deprovision"
	switch {
	case !final(w.Status) && deprovision:
		m.setState("deprovisioning", "", t)
	case !final(w.Status):
		m.setState("provisioning", "", t)
	case w.Status == "succeeded" && deprovision:
		m.setState("ready", "", t)
	case w.Status == "succeeded":
		m.setState("provisioned", "", t)
	default:
		m.setState("failed", m.Reason, t)
	}
}

// final reports whether a workflow status is an end.
func final(status string) bool {
	switch status {
	case "succeeded", "failed", "timed_out", "skipped":
		return true
	}
	return false
}

// orderBegins applies an order's creation, start or wait at the site.
// An order other than the last one is the last unless the last is
// central's and the site has not created it yet (it comes later in the
// site's events: central's revisions reach the site in order); a start
// of another order than the last (one that waited while another was
// placed) changes nothing.
func orderBegins(m *Machine, e *SiteEvent, f map[string]string) {
	o, key := m.LastOrder, f["order"]
	if o == nil || o.Key != key {
		if e.Kind == "order.started" || (o != nil && o.Revision > 0 && (o.Status == OrderPlaced || o.Status == OrderDelivered)) {
			return
		}
		o = &Order{Key: key, Action: f["action"], Image: f["order_image"], By: e.By, Placed: e.Time}
	} else {
		c := *o
		o = &c
	}
	if d := f["order_sha256"]; d != "" {
		o.ImageSHA256 = d
	}
	if id := f["trace_id"]; o.TraceID == "" && validTraceID(id) {
		o.TraceID = id
	}
	o.Status, o.Reason, o.Updated = OrderRunning, "", e.Time
	if e.Kind == "order.waiting" {
		o.Status, o.Reason = OrderWaiting, messageAfter(e.Message, "order "+key+" waits: ")
	}
	m.LastOrder = o
}

// orderEnds applies the end of an order at the site, if it is the last.
func orderEnds(m *Machine, e *SiteEvent, f map[string]string) {
	if m.LastOrder == nil || m.LastOrder.Key != f["order"] {
		return
	}
	o := *m.LastOrder
	o.Status, o.Updated = OrderFailed, e.Time
	switch e.Kind {
	case "order.succeeded":
		o.Status, o.Reason = OrderSucceeded, ""
	case "order.failed":
		o.Reason = messageAfter(e.Message, "order "+o.Key+" failed: ")
	default:
		o.Reason = "refused by the site: " + f["reason"]
	}
	m.LastOrder = &o
}

// StateDeclared is the state of a machine central put into its site's
// desired state that the site has not reported yet: the site is offline,
// or has not applied that revision. The site's machine.created event
// replaces the record, keeping only an order central placed for it
// meanwhile.
const StateDeclared = "declared"

// Declare returns the record of a machine central put into site's
// desired state: m itself if the site has reported the machine (its
// events, not central's object, say what it is), else a declared record
// with the object's hostname, MACs and tags.
func Declare(m *Machine, site string, obj *syncproto.Machine, t time.Time) *Machine {
	if m != nil && m.Seq != 0 {
		return m
	}
	d := &Machine{Site: site, ID: obj.ID, Hostname: obj.Hostname, Tags: obj.Tags, State: StateDeclared, StateSince: t, Updated: t}
	for _, i := range obj.Interfaces {
		d.MACs = append(d.MACs, i.MAC)
	}
	if m != nil {
		d.LastOrder, d.StateSince = m.LastOrder, m.StateSince
	}
	return d
}

// reported is what is kept of m when its site reports the machine
// created: the last order of a record only central had declared.
func reported(m *Machine) *Machine {
	if m == nil || m.Seq != 0 || m.LastOrder == nil {
		return nil
	}
	return &Machine{Site: m.Site, ID: m.ID, LastOrder: m.LastOrder}
}

// PlacedOrder is an order central placed: its revision of the site's
// desired state, who placed it and when.
type PlacedOrder struct {
	Key, Action, Image, ImageSHA256 string
	By                              string
	// TraceID is the order's trace's id ("" if it has none).
	TraceID  string
	Revision uint64
	Time     time.Time
}

// PlaceOrder makes p the last order of m (which it copies), placed.
func PlaceOrder(m *Machine, p PlacedOrder) *Machine {
	m = m.clone()
	m.LastOrder = &Order{Key: p.Key, Action: p.Action, Image: p.Image, ImageSHA256: p.ImageSHA256, By: p.By,
		Revision: p.Revision, Placed: p.Time, Status: OrderPlaced, Updated: p.Time, TraceID: p.TraceID}
	m.Updated = p.Time
	return m
}

// SpansKept counts n more spans of m's last order's trace, if its last
// order is of trace traceID; it returns the copy it changed, or nil if
// nothing changed.
func SpansKept(m *Machine, traceID string, n int) *Machine {
	if m == nil || m.LastOrder == nil || m.LastOrder.TraceID != traceID || n <= 0 {
		return nil
	}
	m = m.clone()
	o := *m.LastOrder
	o.Spans += n
	m.LastOrder = &o
	return m
}

// Delivered marks m's last order delivered if it is central's, placed,
// in a revision at or below acked, which the site has applied; it
// returns the copy it changed, or nil if nothing changed.
func Delivered(m *Machine, acked uint64, t time.Time) *Machine {
	o := m.LastOrder
	if o == nil || o.Status != OrderPlaced || o.Revision == 0 || o.Revision > acked {
		return nil
	}
	m = m.clone()
	c := *o
	c.Status, c.Updated = OrderDelivered, t
	m.LastOrder, m.Updated = &c, t
	return m
}

// clone copies m deeply enough that changing the copy's record, workflow
// or order leaves m as it was (the workflow's Actions are copied when
// changed).
func (m *Machine) clone() *Machine {
	c := *m
	if m.Workflow != nil {
		w := *m.Workflow
		c.Workflow = &w
	}
	return &c
}

// InFlight reports whether m's last order has not ended.
func (m *Machine) InFlight() bool {
	if m.LastOrder == nil {
		return false
	}
	switch m.LastOrder.Status {
	case OrderSucceeded, OrderFailed:
		return false
	}
	return true
}

// validTraceID reports whether id is a trace id (32 lower-case hex
// digits, not all zero).
func validTraceID(id string) bool {
	if len(id) != 32 || id == strings.Repeat("0", 32) {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
