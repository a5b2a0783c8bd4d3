package fleet

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// ev is an event of machine m1 at t0 plus seq seconds.
func ev(seq uint64, kind, msg string, fields map[string]string) *SiteEvent {
	return &SiteEvent{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), MachineID: "m1", Kind: kind, Message: msg, Fields: fields, By: "site"}
}

// fold applies events in order from no record.
func fold(events ...*SiteEvent) *Machine {
	var m *Machine
	for _, e := range events {
		m, _ = Apply("ams2", m, e)
	}
	return m
}

// view is what the table compares: the record without its last event
// and times.
func view(m *Machine) *Machine {
	if m == nil {
		return nil
	}
	c := *m
	c.LastEvent, c.Updated, c.StateSince, c.Seq = nil, time.Time{}, time.Time{}, 0
	if c.Workflow != nil {
		w := *c.Workflow
		w.Started, w.Ended = time.Time{}, time.Time{}
		c.Workflow = &w
	}
	if c.LastOrder != nil {
		o := *c.LastOrder
		o.Placed, o.Updated = time.Time{}, time.Time{}
		c.LastOrder = &o
	}
	return &c
}

var created = ev(1, "machine.created", "machine m1 created (ready)", map[string]string{
	"state": "ready", "hostname": "web-1", "macs": `["02:00:00:00:00:01"]`, "tags": `["gpu","a,b"]`})

func provisioning(seq uint64) []*SiteEvent {
	return []*SiteEvent{
		ev(seq, "order.created", "order o1: provision machine m1", map[string]string{"order": "o1", "action": "provision"}),
		ev(seq+1, "workflow.created", "workflow o1 created from template install (2 actions)", map[string]string{"workflow": "o1", "template": "install", "purpose": "provision"}),
		ev(seq+2, "machine.state", "machine m1: ready → provisioning", map[string]string{"from": "ready", "to": "provisioning", "workflow": "o1"}),
		ev(seq+3, "workflow.running", "workflow o1 running", map[string]string{"workflow": "o1", "from": "pending", "to": "running"}),
		ev(seq+4, "action.running", "wipe running", map[string]string{"workflow": "o1", "action": "wipe", "from": "pending", "to": "running"}),
	}
}

func TestApply(t *testing.T) {
	base := func() *Machine {
		return &Machine{Site: "ams2", ID: "m1", State: "ready", Hostname: "web-1", MACs: []string{"02:00:00:00:00:01"}, Tags: []string{"gpu", "a,b"}}
	}
	with := func(fn func(m *Machine)) *Machine { m := base(); fn(m); return m }
	tests := map[string]struct {
		events []*SiteEvent
		want   *Machine
	}{
		"created":                             {[]*SiteEvent{created}, base()},
		"deleted":                             {[]*SiteEvent{created, ev(2, "machine.deleted", "machine m1 deleted", nil)}, nil},
		"an unknown machine's job is nothing": {[]*SiteEvent{ev(1, "bmc.job.succeeded", "power_on succeeded", map[string]string{"job": "j"})}, nil},
		"power is kept by an update, not by a new machine": {[]*SiteEvent{created, ev(2, "power.on", "machine m1: power unknown → on", map[string]string{"to": "on"}),
			ev(3, "machine.updated", "machine m1 updated (ready)", map[string]string{"state": "ready", "hostname": "web-2", "power": "on"})},
			with(func(m *Machine) { m.Power, m.Hostname, m.MACs, m.Tags = "on", "web-2", nil, nil })},
		"created again": {[]*SiteEvent{created, ev(2, "power.on", "", map[string]string{"to": "on"}), ev(3, "machine.deleted", "", nil),
			ev(4, "machine.created", "", map[string]string{"state": "ready"})},
			&Machine{Site: "ams2", ID: "m1", State: "ready"}},
		"discovered by an older release": {[]*SiteEvent{ev(1, "machine.discovered", "discovery created machine m1", map[string]string{"mac": "02:00:00:00:00:09", "created": "true"})},
			&Machine{Site: "ams2", ID: "m1", State: "discovered", MACs: []string{"02:00:00:00:00:09"}}},
		"discovered with its record": {[]*SiteEvent{ev(1, "machine.discovered", "", map[string]string{"mac": "02:00:00:00:00:09", "created": "true",
			"state": "discovered", "macs": `["02:00:00:00:00:09","02:00:00:00:00:0a"]`})},
			&Machine{Site: "ams2", ID: "m1", State: "discovered", MACs: []string{"02:00:00:00:00:09", "02:00:00:00:00:0a"}}},
		"provisioning": {append([]*SiteEvent{created}, provisioning(2)...), with(func(m *Machine) {
			m.State = "provisioning"
			m.Workflow = &Workflow{ID: "o1", Purpose: "provision", Status: "running", Step: "wipe", Total: 2, Actions: map[string]string{"wipe": "running"}}
			m.LastOrder = &Order{Key: "o1", Action: "provision", By: "site", Status: OrderRunning}
		})},
		"progress": {append(append([]*SiteEvent{created}, provisioning(2)...),
			ev(7, "action.progress", "wipe: 40%", map[string]string{"workflow": "o1", "action": "wipe", "from": "running", "to": "running", "progress": "40"})),
			with(func(m *Machine) {
				m.State = "provisioning"
				m.Workflow = &Workflow{ID: "o1", Purpose: "provision", Status: "running", Step: "wipe", Total: 2, Progress: "wipe 40%", Actions: map[string]string{"wipe": "running"}}
				m.LastOrder = &Order{Key: "o1", Action: "provision", By: "site", Status: OrderRunning}
			})},
		"failed": {append(append([]*SiteEvent{created}, provisioning(2)...),
			ev(7, "action.failed", "wipe failed: disk gone", map[string]string{"workflow": "o1", "action": "wipe", "from": "running", "to": "failed"}),
			ev(8, "action.skipped", "write skipped", map[string]string{"workflow": "o1", "action": "write", "from": "pending", "to": "skipped"}),
			ev(9, "workflow.failed", "workflow o1 failed: wipe failed", map[string]string{"workflow": "o1", "from": "running", "to": "failed"}),
			ev(10, "machine.state", "machine m1: provisioning → failed: wipe failed: disk gone", map[string]string{"from": "provisioning", "to": "failed", "workflow": "o1"}),
			ev(11, "order.failed", "order o1 failed: workflow o1 failed: wipe failed", map[string]string{"order": "o1", "action": "provision"})),
			with(func(m *Machine) {
				m.State, m.Reason = "failed", "wipe failed: disk gone"
				m.Workflow = &Workflow{ID: "o1", Purpose: "provision", Status: "failed", Step: "write", Done: 2, Total: 2, Actions: map[string]string{"wipe": "failed", "write": "skipped"}}
				m.LastOrder = &Order{Key: "o1", Action: "provision", By: "site", Status: OrderFailed, Reason: "workflow o1 failed: wipe failed"}
			})},
		"a deprovision's success makes it ready": {[]*SiteEvent{created,
			ev(2, "workflow.created", "workflow d1 created from template wipe (1 actions)", map[string]string{"workflow": "d1", "purpose": "deprovision"}),
			ev(3, "workflow.succeeded", "workflow d1 succeeded", map[string]string{"workflow": "d1", "from": "running", "to": "succeeded"})},
			with(func(m *Machine) {
				m.Workflow = &Workflow{ID: "d1", Purpose: "deprovision", Status: "succeeded", Total: 1}
			})},
		"another workflow's transition is nothing": {[]*SiteEvent{created,
			ev(2, "workflow.created", "workflow w2 created from template install (2 actions)", map[string]string{"workflow": "w2", "purpose": "provision"}),
			ev(3, "workflow.failed", "workflow w1 failed", map[string]string{"workflow": "w1", "from": "running", "to": "failed"})},
			with(func(m *Machine) {
				m.State = "provisioning"
				m.Workflow = &Workflow{ID: "w2", Purpose: "provision", Status: "pending", Total: 2}
			})},
		"waiting, then started": {[]*SiteEvent{created,
			ev(2, "order.waiting", "order o1 waits: image ubuntu is not at the site yet", map[string]string{"order": "o1", "action": "provision", "image": "ubuntu"}),
			ev(3, "order.started", "order o1 started", map[string]string{"order": "o1", "action": "provision"})},
			with(func(m *Machine) {
				m.LastOrder = &Order{Key: "o1", Action: "provision", By: "site", Status: OrderRunning}
			})},
		"a waiting order's start after another order is not the last's": {[]*SiteEvent{created,
			ev(2, "order.waiting", "order o1 waits: x", map[string]string{"order": "o1", "action": "provision"}),
			ev(3, "order.created", "order o2: power_on machine m1", map[string]string{"order": "o2", "action": "power_on"}),
			ev(4, "order.started", "order o1 started", map[string]string{"order": "o1", "action": "provision"})},
			with(func(m *Machine) {
				m.LastOrder = &Order{Key: "o2", Action: "power_on", By: "site", Status: OrderRunning}
			})},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, view(fold(tc.events...))); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

// TestApplyWaitingReason: a waiting order says why, from its message.
func TestApplyWaitingReason(t *testing.T) {
	m := fold(created, ev(2, "order.waiting", "order o1 waits: image ubuntu is not at the site yet", map[string]string{"order": "o1", "action": "provision"}))
	if m.LastOrder.Status != OrderWaiting || m.LastOrder.Reason != "image ubuntu is not at the site yet" {
		t.Errorf("last order %+v", m.LastOrder)
	}
}

// TestCentralOrder: an order placed at central is placed, delivered once
// the site applied its revision, then follows the site's events; the
// site's own order in between does not replace it.
func TestCentralOrder(t *testing.T) {
	m := fold(created)
	m = PlaceOrder(m, PlacedOrder{Key: "c1", Action: "provision", Image: "ubuntu", By: "ops", Revision: 7, Time: t0})
	if Delivered(m, 6, t0) != nil {
		t.Fatal("delivered by an ack of an earlier revision")
	}
	d := Delivered(m, 7, t0)
	if d == nil || d.LastOrder.Status != OrderDelivered || m.LastOrder.Status != OrderPlaced {
		t.Fatalf("after the ack: %+v (before: %+v)", d.LastOrder, m.LastOrder)
	}
	m, _ = Apply("ams2", d, ev(3, "order.created", "order s1: power_on machine m1", map[string]string{"order": "s1", "action": "power_on"}))
	if m.LastOrder.Key != "c1" {
		t.Fatalf("a site order replaced central's undelivered one: %+v", m.LastOrder)
	}
	m, _ = Apply("ams2", m, ev(4, "order.created", "order c1: provision machine m1", map[string]string{"order": "c1", "action": "provision"}))
	m, _ = Apply("ams2", m, ev(5, "order.succeeded", "order c1 succeeded", map[string]string{"order": "c1", "action": "provision"}))
	want := &Order{Key: "c1", Action: "provision", Image: "ubuntu", By: "ops", Revision: 7, Status: OrderSucceeded}
	if diff := cmp.Diff(want, view(m).LastOrder); diff != "" {
		t.Errorf("last order (-want +got):\n%s", diff)
	}
	if m.InFlight() {
		t.Error("a succeeded order is in flight")
	}
}

// TestOrderTrace: an order placed at central keeps its trace's id through
// its delivery and the site's events (which do not replace it with the
// site's own); an order placed at the site takes the trace id of its
// event, if it is one; a machine's discovery gives its hardware class.
func TestOrderTrace(t *testing.T) {
	const central, site = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
	m := PlaceOrder(fold(created), PlacedOrder{Key: "c1", Action: "provision", Revision: 7, Time: t0, TraceID: central})
	m = Delivered(m, 7, t0)
	m, _ = Apply("ams2", m, ev(3, "order.created", "order c1: provision machine m1", map[string]string{"order": "c1", "action": "provision", "trace_id": site}))
	if m.LastOrder.TraceID != central {
		t.Fatalf("central's order's trace %q, want %q", m.LastOrder.TraceID, central)
	}
	m, _ = Apply("ams2", m, ev(4, "order.created", "order s1: power_on machine m1", map[string]string{"order": "s1", "action": "power_on", "trace_id": site}))
	if m.LastOrder.Key != "s1" || m.LastOrder.TraceID != site {
		t.Fatalf("the site's order: %+v, want its trace %q", m.LastOrder, site)
	}
	m, _ = Apply("ams2", m, ev(5, "order.created", "order s2: power_on machine m1", map[string]string{"order": "s2", "action": "power_on", "trace_id": "00-not-a-trace"}))
	if m.LastOrder.TraceID != "" {
		t.Fatalf("an order with a malformed trace id: %+v, want none", m.LastOrder)
	}
	m, _ = Apply("ams2", m, ev(6, "machine.discovered", "discovery updated machine m1", map[string]string{"mac": "02:00:00:00:00:01", "vendor": "Dell Inc.", "product": "PowerEdge R650"}))
	if m.Hardware != "Dell Inc. PowerEdge R650" {
		t.Fatalf("hardware class %q", m.Hardware)
	}
}

// TestApplyDoesNotModify: Apply copies the record it changes.
func TestApplyDoesNotModify(t *testing.T) {
	m := fold(append([]*SiteEvent{created}, provisioning(2)...)...)
	before := *m.Workflow
	beforeActions := len(m.Workflow.Actions)
	Apply("ams2", m, ev(9, "action.succeeded", "wipe succeeded", map[string]string{"workflow": "o1", "action": "wipe", "to": "succeeded"}))
	if m.Workflow.Done != before.Done || len(m.Workflow.Actions) != beforeActions || m.Workflow.Actions["wipe"] != "running" {
		t.Errorf("Apply changed the record it was given: %+v", m.Workflow)
	}
}
