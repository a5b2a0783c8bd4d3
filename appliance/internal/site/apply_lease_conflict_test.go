package site

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// TestQuarantineAddress: a host's answer to the DHCP server's probe
// quarantines the address (a declined lease of the host's MAC, until the
// quarantine's end) with an event naming the address, the MAC and the
// subnet; an address a lease holds, or a malformed payload, is refused
// and changes nothing.
func TestQuarantineAddress(t *testing.T) {
	const host, client = "02:00:00:00:00:aa", "02:00:00:00:00:0c"
	until := t0.Add(10 * time.Minute)
	ok := AddressConflict{IP: "198.18.0.100", Subnet: "lab", MAC: host, Time: t0, Until: until, By: ActorDHCP}
	with := func(f func(q *AddressConflict)) AddressConflict { q := ok; f(&q); return q }
	tests := map[string]struct {
		before *store.Lease
		q      AddressConflict
		code   string
	}{
		"free address":          {q: ok},
		"after another's lease": {before: lease("198.18.0.100", client, store.LeaseActive, t0), q: ok},
		"after a release":       {before: lease("198.18.0.100", client, store.LeaseReleased, t0), q: ok},
		"already quarantined":   {before: lease("198.18.0.100", host, store.LeaseDeclined, t0.Add(time.Minute)), q: ok},
		"leased":                {before: lease("198.18.0.100", client, store.LeaseActive, t0.Add(time.Hour)), q: ok, code: errs.CodeConflict},
		"offered":               {before: lease("198.18.0.100", client, store.LeaseOffered, t0.Add(time.Minute)), q: ok, code: errs.CodeConflict},
		"outside the subnet":    {q: with(func(q *AddressConflict) { q.IP = "198.19.0.1" }), code: errs.CodeInvalid},
		"no such subnet":        {q: with(func(q *AddressConflict) { q.Subnet = "nope" }), code: errs.CodeInvalid},
		"bad MAC":               {q: with(func(q *AddressConflict) { q.MAC = "02:00" }), code: errs.CodeInvalid},
		"not IPv4":              {q: with(func(q *AddressConflict) { q.IP = "2001:db8::1" }), code: errs.CodeInvalid},
		"until before time":     {q: with(func(q *AddressConflict) { q.Until = t0 }), code: errs.CodeInvalid},
		"no time":               {q: with(func(q *AddressConflict) { q.Time = time.Time{} }), code: errs.CodeInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: sampleSubnet("lab"), Time: t0})
			if tc.before != nil {
				e.applyOK(2, PutLease, Put[store.Lease]{Object: tc.before, Time: tc.before.Starts})
			}
			const index = 10
			before, kinds := rawDump(t, e.db), len(eventKinds(t, e))
			r := e.applyCmd(index, QuarantineAddress, tc.q)
			if tc.code != "" {
				checkRefused(t, e, r, tc.code, before, index)
				return
			}
			if r.Err != nil {
				t.Fatalf("refused: %v", r.Err)
			}
			e.view(func(tx *store.Tx) error {
				l, err := store.Get[store.Lease](tx, tc.q.IP)
				if err != nil || l.State != store.LeaseDeclined || l.MAC != host || !l.Expires.Equal(until) || !l.Holds(until.Add(-time.Second)) || l.Holds(until) {
					t.Errorf("lease at %s = %+v, %v; want declined by %s until %s", tc.q.IP, l, err, host, until)
				}
				events, err := tx.EventsSince(0, 1000)
				if err != nil {
					t.Fatal(err)
				}
				ev := events[len(events)-1]
				want := map[string]string{"ip": tc.q.IP, "mac": host, "subnet": "lab", "until": until.Format(time.RFC3339)}
				if ev.Kind != EventAddressConflict || ev.By != ActorDHCP || !cmp.Equal(ev.Fields, want) {
					t.Errorf("last event %+v; want %s by %s with %v", ev, EventAddressConflict, ActorDHCP, want)
				}
				return nil
			})
			if n := len(eventKinds(t, e)) - kinds; n != 1 {
				t.Errorf("%d events recorded, want 1", n)
			}
		})
	}
}

// checkRefused checks that the command applied at index was refused with
// code and changed nothing of the store dumped before it (but the
// applied index).
func checkRefused(t *testing.T, e *env, r Result, code string, before map[string]map[string]string, index uint64) {
	t.Helper()
	if errCode(r) != code {
		t.Fatalf("result %+v (err %v), want a %s refusal", r, r.Err, code)
	}
	if diff := cmp.Diff(withApplied(before, index), rawDump(t, e.db)); diff != "" {
		t.Errorf("a refused command changed the store (-want +got):\n%s", diff)
	}
}
