package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/syncproto"
)

// siteEvents is a batch of site events from first, each the site's JSON.
func siteEvents(first uint64, events ...map[string]any) *syncproto.Events {
	b := &syncproto.Events{First: first, Last: first + uint64(len(events)) - 1}
	for i, e := range events {
		e["seq"] = first + uint64(i)
		if _, ok := e["time"]; !ok {
			e["time"] = t0.Add(time.Duration(i) * time.Second)
		}
		raw, _ := json.Marshal(e)
		b.Events = append(b.Events, syncproto.Event{Seq: first + uint64(i), Data: raw})
	}
	return b
}

func machineCreated(id string, tags ...string) map[string]any {
	t, _ := json.Marshal(tags)
	return map[string]any{"machine_id": id, "kind": "machine.created", "message": "machine " + id + " created (ready)",
		"fields": map[string]string{"state": "ready", "hostname": id + ".example.net", "tags": string(t)}}
}

// fleetStore is a store with site s1 (labelled region=eu) and machines m1
// and m2 derived from its events.
func fleetStore(t *testing.T) *DB {
	t.Helper()
	d, _ := openTest(t)
	applyNext(t, d,
		cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s1", CredentialHash: HashSecret("x"), CreatedAt: t0, Labels: map[string]string{"region": "eu"}}}),
		cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Time: t0, Events: siteEvents(1,
			machineCreated("m1", "gpu"), machineCreated("m2"),
			map[string]any{"kind": "settings.changed", "message": "no machine's"},
			map[string]any{"machine_id": "m2", "kind": "power.on", "message": "machine m2: power unknown → on", "fields": map[string]string{"from": "unknown", "to": "on"}},
		)}))
	return d
}

// TestFleetDerivedInApply: the events' apply derives the records, which
// the index serves, and the store keeps (a reopened store has them).
func TestFleetDerivedInApply(t *testing.T) {
	d, path := openTest(t)
	d.Close()
	d = fleetStore(t)
	f := d.Fleet()
	m2, err := f.Machine("s1", "m2")
	if err != nil || m2.Power != "on" || m2.State != "ready" || m2.Seq != 4 || m2.LastEvent.Kind != "power.on" {
		t.Fatalf("m2 = %+v, %v", m2, err)
	}
	page, err := f.Machines("label:region=eu tag:gpu", 10, "")
	if err != nil || page.Total != 1 || page.Machines[0].ID != "m1" {
		t.Fatalf("page %+v, %v", page, err)
	}
	if _, err := f.Machines("rack:1", 10, ""); err == nil {
		t.Error("an unknown field was no error")
	}
	_ = path
}

// TestFleetPaging: pages follow each other by their Next cursor, in site
// then id order; Total counts every match.
func TestFleetPaging(t *testing.T) {
	d, _ := openTest(t)
	var cmds [][]byte
	for s := 2; s >= 1; s-- {
		site := fmt.Sprintf("s%d", s)
		cmds = append(cmds, cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: site, CreatedAt: t0}}))
		var evs []map[string]any
		for i := 5; i >= 1; i-- {
			evs = append(evs, machineCreated(fmt.Sprintf("m%d", i)))
		}
		cmds = append(cmds, cmd(t, cmdStoreEvents, &storeEventsPayload{Site: site, Time: t0, Events: siteEvents(1, evs...)}))
	}
	applyNext(t, d, cmds...)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		p, err := d.Fleet().Machines("", 3, after)
		if err != nil || p.Total != 10 || pages > 4 {
			t.Fatalf("page after %q: %+v, %v", after, p, err)
		}
		for _, m := range p.Machines {
			got = append(got, m.Site+"/"+m.ID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	want := []string{"s1/m1", "s1/m2", "s1/m3", "s1/m4", "s1/m5", "s2/m1", "s2/m2", "s2/m3", "s2/m4", "s2/m5"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
}

// TestFleetOrderPlacedDelivered: an order central places is the
// machine's last order, placed, by its token's name; the site's ack of
// its revision delivers it; the site's events run it; the timeline has
// central's revision and the site's events, newest first.
func TestFleetOrderPlacedDelivered(t *testing.T) {
	d := fleetStore(t)
	obj := json.RawMessage(`{"id":"c1","action":"provision","machine_id":"m1","image":"ubuntu"}`)
	rev := applyNext(t, d, cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "c1", Object: obj, Time: t0.Add(time.Minute), By: "ops"}))[0]
	m1, _ := d.Fleet().Machine("s1", "m1")
	want := &fleet.Order{Key: "c1", Action: "provision", Image: "ubuntu", By: "ops", Revision: rev.(uint64), Placed: t0.Add(time.Minute),
		Status: fleet.OrderPlaced, Updated: t0.Add(time.Minute)}
	if diff := cmp.Diff(want, m1.LastOrder); diff != "" {
		t.Fatalf("placed (-want +got):\n%s", diff)
	}
	if sum, _ := d.Fleet().Summary(t0.Add(time.Hour)); sum.InFlightTotal != 1 || sum.InFlight[0].ID != "m1" {
		t.Errorf("in flight: %+v", sum.InFlight)
	}
	applyNext(t, d, cmd(t, cmdRecordAck, &recordAckPayload{Site: "s1", Revision: rev.(uint64), Time: t0.Add(2 * time.Minute)}))
	if m1, _ := d.Fleet().Machine("s1", "m1"); m1.LastOrder.Status != fleet.OrderDelivered {
		t.Fatalf("after the ack: %+v", m1.LastOrder)
	}
	applyNext(t, d, cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Time: t0, Events: siteEvents(5,
		map[string]any{"machine_id": "m1", "kind": "order.created", "message": "order c1: provision machine m1", "time": t0.Add(3 * time.Minute),
			"fields": map[string]string{"order": "c1", "action": "provision"}, "by": "central"},
	)}))
	m1, _ = d.Fleet().Machine("s1", "m1")
	if m1.LastOrder.Status != fleet.OrderRunning || m1.LastOrder.By != "ops" {
		t.Fatalf("after the site's event: %+v", m1.LastOrder)
	}
	tl, err := d.Fleet().Timeline("s1", "m1", 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range tl {
		kinds = append(kinds, e.Source+":"+e.Kind+":"+e.By)
	}
	if diff := cmp.Diff([]string{"site:order.created:central", "central:order.placed:ops", "site:machine.created:"}, kinds); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// TestFleetReset: forgetting a site's events forgets its machines, which
// come again with its events.
func TestFleetReset(t *testing.T) {
	d := fleetStore(t)
	applyNext(t, d, cmd(t, cmdResetEvents, &resetEventsPayload{Site: "s1"}))
	if p, _ := d.Fleet().Machines("", 10, ""); p.Total != 0 {
		t.Fatalf("after the reset: %d machines", p.Total)
	}
	applyNext(t, d, cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Time: t0, Events: siteEvents(1, machineCreated("m1"))}))
	if p, _ := d.Fleet().Machines("", 10, ""); p.Total != 1 {
		t.Fatalf("after the events again: %d machines", p.Total)
	}
}

// TestFleetLinkAndReport: the hub's link and report records, as the
// fleet's sites show them; a node ends only its own session.
func TestFleetLinkAndReport(t *testing.T) {
	d := fleetStore(t)
	v := d.Fleet().Version()
	changed := d.Fleet().Changed()
	if err := d.SetLink("s1", "c1", t0, true, t0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("a link's change did not wake the fleet's watchers")
	}
	if d.Fleet().Version() <= v {
		t.Error("the version did not grow")
	}
	if err := d.ReportSite("s1", &syncproto.Report{Appliance: "v1.2", Nodes: 3, Voters: 3, Healthy: 2, Leader: "a1",
		Console: "https://ams2.example.net", Problems: []string{"node a3 unreachable"}, LastSeq: 9}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_ = d.SetLink("s1", "c2", t0, false, t0.Add(2*time.Minute))                 // another node's session ending
	_ = d.SetLink("s1", "c1", t0.Add(-time.Hour), false, t0.Add(2*time.Minute)) // an older session's end
	sites, err := d.Fleet().Sites()
	if err != nil || len(sites) != 1 {
		t.Fatalf("sites %+v, %v", sites, err)
	}
	want := &fleet.Site{ID: "s1", Labels: map[string]string{"region": "eu"}, Machines: map[string]int{"ready": 2},
		Link: fleet.Link{Connected: true, Node: "c1", LastSeen: t0.Add(2 * time.Minute), StoredSeq: 4, SiteLastSeq: 9, EventsBehind: 5},
		Appliance: fleet.Appliance{Version: "v1.2", Nodes: 3, Voters: 3, Healthy: 2, Leader: "a1", Console: "https://ams2.example.net",
			Problems: []string{"node a3 unreachable"}, Reported: t0.Add(time.Minute)}}
	if diff := cmp.Diff(want, sites[0]); diff != "" {
		t.Errorf("site (-want +got):\n%s", diff)
	}
	_ = d.SetLink("s1", "c1", t0, false, t0.Add(3*time.Minute))
	if sites, _ := d.Fleet().Sites(); sites[0].Link.Connected {
		t.Error("the holder's session ended, the site is still connected")
	}
	d.SetLive(func(string) (bool, time.Time) { return true, t0.Add(time.Hour) })
	if sites, _ := d.Fleet().Sites(); !sites[0].Link.Connected || !sites[0].Link.LastSeen.Equal(t0.Add(time.Hour)) {
		t.Errorf("live: %+v", sites[0].Link)
	}
}

// TestFleetSnapshotRoundTrip: the fleet's buckets travel with a
// snapshot, and the restored store's index serves them.
func TestFleetSnapshotRoundTrip(t *testing.T) {
	src := fleetStore(t)
	_ = src.ReportSite("s1", &syncproto.Report{Appliance: "v1"}, t0)
	dst, _ := openTest(t)
	before := dst.Fleet().Version()
	changed := dst.Fleet().Changed()
	if err := dst.Restore(snapshotOf(t, src)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dump(t, src), dump(t, dst)); diff != "" {
		t.Errorf("restored state (-source +restored):\n%s", diff)
	}
	select {
	case <-changed:
	default:
		t.Error("Restore did not wake the fleet's watchers")
	}
	if dst.Fleet().Version() <= before {
		t.Error("the version went back")
	}
	a, _ := src.Fleet().Machines("", 10, "")
	b, _ := dst.Fleet().Machines("", 10, "")
	if diff := cmp.Diff(a.Machines, b.Machines); diff != "" || b.Total != 2 {
		t.Errorf("restored machines (-source +restored):\n%s", diff)
	}
}

// TestFleetRefusedOrderOfAnOlderSite: a refused order's event of a site
// release that names no machine finds it through central's order.
func TestFleetRefusedOrderOfAnOlderSite(t *testing.T) {
	d := fleetStore(t)
	obj := json.RawMessage(`{"id":"c1","action":"power_on","machine_id":"m2"}`)
	applyNext(t, d, cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "c1", Object: obj, Time: t0, By: "ops"}),
		cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Time: t0, Events: siteEvents(5,
			map[string]any{"kind": "sync.order_refused", "message": "refused", "fields": map[string]string{"order": "c1", "reason": "machine_id: machine \"m2\" has no BMC"}})}))
	m2, _ := d.Fleet().Machine("s1", "m2")
	if m2.LastOrder.Status != fleet.OrderFailed || m2.LastOrder.Reason != `refused by the site: machine_id: machine "m2" has no BMC` {
		t.Errorf("last order %+v", m2.LastOrder)
	}
}

// TestFleetDeclaredMachines: a machine central puts into a site's desired
// state is in the fleet at once, declared, with the object's hostname,
// MACs and tags, so that an order can be placed for it while its site is
// offline; the site's report of it replaces the record but keeps that
// order; deleting a machine the site never reported forgets it, and a
// put of one the site reported changes nothing the site said.
func TestFleetDeclaredMachines(t *testing.T) {
	d := fleetStore(t)
	obj := json.RawMessage(`{"id":"m9","hostname":"web-9","interfaces":[{"mac":"02:00:00:00:00:09"}],"tags":["edge"]}`)
	applyNext(t, d, cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindMachine, Key: "m9", Object: obj, Time: t0.Add(time.Minute), By: "ops"}))
	m9, err := d.Fleet().Machine("s1", "m9")
	want := &fleet.Machine{Site: "s1", ID: "m9", Hostname: "web-9", MACs: []string{"02:00:00:00:00:09"}, Tags: []string{"edge"},
		State: fleet.StateDeclared, StateSince: t0.Add(time.Minute), Updated: t0.Add(time.Minute)}
	if diff := cmp.Diff(want, m9); err != nil || diff != "" {
		t.Fatalf("declared (-want +got, %v):\n%s", err, diff)
	}
	order := json.RawMessage(`{"id":"c9","action":"power_cycle","machine_id":"m9"}`)
	applyNext(t, d, cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "c9", Object: order, Time: t0.Add(2 * time.Minute), By: "ops"}))
	applyNext(t, d, cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Time: t0, Events: siteEvents(5, machineCreated("m9"))}))
	m9, _ = d.Fleet().Machine("s1", "m9")
	if m9.State != "ready" || m9.Hostname != "m9.example.net" || m9.LastOrder == nil || m9.LastOrder.Key != "c9" || m9.LastOrder.Status != fleet.OrderPlaced {
		t.Fatalf("reported: %+v (order %+v)", m9, m9.LastOrder)
	}
	applyNext(t, d, cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindMachine, Key: "m9",
		Object: json.RawMessage(`{"id":"m9","hostname":"other"}`), Time: t0.Add(3 * time.Minute)}))
	if got, _ := d.Fleet().Machine("s1", "m9"); got.State != "ready" || got.Hostname != "m9.example.net" {
		t.Errorf("a put of a reported machine changed its record: %+v", got)
	}

	applyNext(t, d, cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindMachine, Key: "m8", Object: json.RawMessage(`{"id":"m8"}`), Time: t0}))
	applyNext(t, d, cmd(t, cmdDeleteDesired, &deleteDesiredPayload{Site: "s1", Kind: KindMachine, Key: "m8", Time: t0}))
	if _, err := d.Fleet().Machine("s1", "m8"); err == nil {
		t.Error("a declared machine central deleted is still in the fleet")
	}
	applyNext(t, d, cmd(t, cmdDeleteDesired, &deleteDesiredPayload{Site: "s1", Kind: KindMachine, Key: "m9", Time: t0}))
	if _, err := d.Fleet().Machine("s1", "m9"); err != nil {
		t.Errorf("a reported machine went from the fleet before its site said it was deleted: %v", err)
	}
}
