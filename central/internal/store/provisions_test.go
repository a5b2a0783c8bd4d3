package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// orderEvent is a site's event of an order of machine m.
func orderEvent(m, order, kind, action string, at time.Time) map[string]any {
	return map[string]any{"machine_id": m, "kind": kind, "time": at, "message": "order " + order,
		"fields": map[string]string{"order": order, "action": action}}
}

// TestProvisionsEnded: the provisions that ended in the window, from
// the events, each with its creation; a deprovision, one that ended
// outside the window, and one still running are not.
func TestProvisionsEnded(t *testing.T) {
	d := fleetStore(t)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	applyNext(t, d, cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Time: t0, Events: siteEvents(5,
		orderEvent("m1", "o1", "order.created", "provision", at(1)),
		orderEvent("m2", "o2", "order.created", "provision", at(2)),
		orderEvent("m1", "o1", "order.succeeded", "provision", at(11)),
		orderEvent("m2", "o2", "order.failed", "provision", at(12)),
		orderEvent("m1", "o3", "order.created", "deprovision", at(13)),
		orderEvent("m1", "o3", "order.succeeded", "deprovision", at(14)),
		orderEvent("m1", "o4", "order.created", "provision", at(15)),
		orderEvent("m2", "o5", "order.created", "provision", at(20)),
		orderEvent("m2", "o5", "order.succeeded", "provision", at(200)),
	)}))
	got, err := d.ProvisionsEnded("", at(5), at(60))
	if err != nil {
		t.Fatal(err)
	}
	want := []ProvisionEnd{
		{Site: "s1", Machine: "m1", Order: "o1", Created: at(1), Ended: at(11), OK: true},
		{Site: "s1", Machine: "m2", Order: "o2", Created: at(2), Ended: at(12)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("provisions (-want +got):\n%s", diff)
	}
	if got, err := d.ProvisionsEnded("s2", at(0), at(300)); err != nil || len(got) != 0 {
		t.Errorf("another site's: %+v %v, want none", got, err)
	}
}

// BenchmarkProvisionsEnded reads a day of one site's provisions: 10,000
// provisions (each order.created and its end) among 300,000 events, as
// the charts page does for its 24-hour window.
func BenchmarkProvisionsEnded(b *testing.B) {
	d, err := Open(b.TempDir() + "/central.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	applyNext(b, d, cmd(b, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s1", CredentialHash: HashSecret("x"), CreatedAt: t0}}))
	const provisions, perProvision = 10_000, 30
	seq := uint64(1)
	for p := range provisions {
		at := t0.Add(time.Duration(p) * 8 * time.Second)
		m, o := fmt.Sprintf("m%d", p%500), fmt.Sprintf("o%d", p)
		events := []map[string]any{orderEvent(m, o, "order.created", "provision", at)}
		for range perProvision - 2 {
			events = append(events, map[string]any{"machine_id": m, "kind": "action.progress", "time": at.Add(time.Second), "message": "image.write 40%"})
		}
		events = append(events, orderEvent(m, o, "order.succeeded", "provision", at.Add(5*time.Minute)))
		applyNext(b, d, cmd(b, cmdStoreEvents, &storeEventsPayload{Site: "s1", Time: t0, Events: siteEvents(seq, events...)}))
		seq += perProvision
	}
	to := t0.Add(provisions * 8 * time.Second)
	b.ResetTimer()
	for b.Loop() {
		got, err := d.ProvisionsEnded("s1", to.Add(-24*time.Hour), to)
		if err != nil || len(got) < provisions-40 { // the last 37 end past the window
			b.Fatalf("%d provisions, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/read")
}
