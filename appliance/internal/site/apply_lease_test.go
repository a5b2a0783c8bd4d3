package site

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/testwait"
)

func lease(ip, mac string, state store.LeaseState, expires time.Time) *store.Lease {
	return &store.Lease{IP: ip, MAC: mac, Subnet: "lab", State: state, Starts: t0, Expires: expires}
}

// leaseCommands store a lease: an operator's or an older leader's whole
// lease (PutLease) and the DHCP server's (CommitLease), whose time is the
// lease's start.
var leaseCommands = map[string]func(l *store.Lease, at time.Time) (Type, any){
	"PutLease": func(l *store.Lease, at time.Time) (Type, any) {
		return PutLease, Put[store.Lease]{Object: l, Time: at}
	},
	"CommitLease": func(l *store.Lease, at time.Time) (Type, any) {
		c := *l
		c.Starts = at
		return CommitLease, &c
	},
}

// TestLeaseOwnership checks the site's rule that an address is never held
// by two MACs, whatever proposes the lease.
func TestLeaseOwnership(t *testing.T) {
	const a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	hour := t0.Add(time.Hour)
	tests := map[string]struct {
		first   *store.Lease
		second  *store.Lease
		at      time.Time
		wantErr error
	}{
		"other MAC while active":      {lease("198.18.0.100", a, store.LeaseActive, hour), lease("198.18.0.100", b, store.LeaseActive, hour), t0, errs.ErrConflict},
		"other MAC while offered":     {lease("198.18.0.100", a, store.LeaseOffered, hour), lease("198.18.0.100", b, store.LeaseActive, hour), t0, errs.ErrConflict},
		"other MAC during quarantine": {lease("198.18.0.100", a, store.LeaseDeclined, hour), lease("198.18.0.100", b, store.LeaseActive, hour), t0, errs.ErrConflict},
		"other MAC after expiry":      {lease("198.18.0.100", a, store.LeaseActive, hour), lease("198.18.0.100", b, store.LeaseActive, hour.Add(time.Hour)), hour, nil},
		"other MAC after release":     {lease("198.18.0.100", a, store.LeaseReleased, t0), lease("198.18.0.100", b, store.LeaseActive, hour), t0, nil},
		"same MAC renews":             {lease("198.18.0.100", a, store.LeaseActive, hour), lease("198.18.0.100", a, store.LeaseActive, hour.Add(time.Hour)), t0, nil},
		"outside the subnet":          {nil, lease("198.19.0.1", a, store.LeaseActive, hour), t0, errs.ErrInvalid},
	}
	for cmdName, commit := range leaseCommands {
		for name, tc := range tests {
			t.Run(cmdName+"/"+name, func(t *testing.T) {
				e := newEnv(t)
				e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: sampleSubnet("lab"), Time: t0})
				if tc.first != nil {
					e.applyOK(2, PutLease, Put[store.Lease]{Object: tc.first, Time: t0})
				}
				typ, payload := commit(tc.second, tc.at)
				err := resultErr(e.applyCmd(3, typ, payload))
				if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
					t.Fatalf("second lease: %v, want %v", err, tc.wantErr)
				}
				e.view(func(tx *store.Tx) error {
					got, gerr := store.Get[store.Lease](tx, tc.second.IP)
					switch {
					case tc.wantErr == nil && (gerr != nil || got.MAC != tc.second.MAC):
						t.Errorf("lease at %s = %+v, %v; want it held by %s", tc.second.IP, got, gerr, tc.second.MAC)
					case tc.wantErr != nil && tc.first != nil && (gerr != nil || got.MAC != tc.first.MAC):
						t.Errorf("refused lease changed the address: %+v", got)
					}
					return nil
				})
			})
		}
	}
}

// TestCommitLease: applying the DHCP server's lease decides whether it
// renews the client's lease, and records a known machine's new lease on
// its timeline (renewals, which come every half lease, and other states
// are not).
func TestCommitLease(t *testing.T) {
	const mac, other = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"
	hour := t0.Add(time.Hour)
	ofM1 := func(l *store.Lease) *store.Lease { l.MachineID, l.Hostname = "m1", "m1"; return l }
	later := func(l *store.Lease) *store.Lease {
		l.Starts, l.Expires = t0.Add(30*time.Minute), hour.Add(30*time.Minute)
		return l
	}
	tests := map[string]struct {
		before  []*store.Lease // stored first, with PutLease
		commit  *store.Lease
		renewed bool
		code    string   // of the refusal, if refused
		events  []string // the kinds of the events the commit records
	}{
		"first ACK of a known machine": {
			commit: ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour)),
			events: []string{"dhcp.lease"},
		},
		"renewal": {
			before:  []*store.Lease{ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour))},
			commit:  later(ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour))),
			renewed: true,
		},
		"ACK after an offer": {
			before: []*store.Lease{ofM1(lease("198.18.0.100", mac, store.LeaseOffered, hour))},
			commit: ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour)),
			events: []string{"dhcp.lease"},
		},
		"ACK of another address": {
			before: []*store.Lease{ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour))},
			commit: later(ofM1(lease("198.18.0.101", mac, store.LeaseActive, hour))),
			events: []string{"dhcp.lease"},
		},
		"ACK after a release": {
			before: []*store.Lease{ofM1(lease("198.18.0.100", mac, store.LeaseReleased, t0))},
			commit: later(ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour))),
			events: []string{"dhcp.lease"},
		},
		"ACK of an unknown client": {
			commit: lease("198.18.0.100", mac, store.LeaseActive, hour),
		},
		"offer": {
			commit: ofM1(lease("198.18.0.100", mac, store.LeaseOffered, hour)),
		},
		"release": {
			before: []*store.Lease{ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour))},
			commit: later(ofM1(lease("198.18.0.100", mac, store.LeaseReleased, hour))),
		},
		"decline": {
			commit: lease("198.18.0.100", mac, store.LeaseDeclined, hour),
		},
		"address another MAC holds": {
			before: []*store.Lease{lease("198.18.0.100", other, store.LeaseActive, hour)},
			commit: ofM1(lease("198.18.0.100", mac, store.LeaseActive, hour)),
			code:   errs.CodeConflict,
		},
		"outside the subnet": {
			commit: ofM1(lease("198.19.0.100", mac, store.LeaseActive, hour)),
			code:   errs.CodeInvalid,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: sampleSubnet("lab"), Time: t0})
			e.applyOK(2, PutMachine, Put[store.Machine]{Object: sampleMachine("m1", mac), Time: t0})
			for i, l := range tc.before {
				e.applyOK(uint64(3+i), PutLease, Put[store.Lease]{Object: l, Time: l.Starts})
			}
			const index = 10
			before, kinds := rawDump(t, e.db), len(eventKinds(t, e))
			r := e.applyCmd(index, CommitLease, tc.commit)

			if tc.code != "" {
				checkRefused(t, e, r, tc.code, before, index)
				return
			}
			if r.Err != nil {
				t.Fatalf("result %+v: refused: %v", r, r.Err)
			}
			got, err := DecodeValue[LeaseResult](r)
			if err != nil || got.Renewed != tc.renewed {
				t.Errorf("result %+v, %v; want renewed %v", got, err, tc.renewed)
			}
			if diff := cmp.Diff(tc.events, eventKinds(t, e)[kinds:]); diff != "" {
				t.Errorf("events recorded (-want +got):\n%s", diff)
			}
			want := *tc.commit
			want.Meta = store.Meta{Version: index, CreatedAt: want.Starts, UpdatedAt: want.Starts}
			e.view(func(tx *store.Tx) error {
				if len(tc.before) > 0 && tc.before[0].IP == want.IP {
					want.CreatedAt = tc.before[0].Starts
				}
				l, err := store.Get[store.Lease](tx, want.IP)
				if err != nil {
					t.Fatalf("the committed lease: %v", err)
				}
				if diff := cmp.Diff(&want, l); diff != "" {
					t.Errorf("stored lease (-want +got):\n%s", diff)
				}
				if want.State == store.LeaseDeclined {
					return nil
				}
				if l, err := tx.LeaseByMAC("lab", mac); err != nil || l.IP != want.IP {
					t.Errorf("LeaseByMAC = %+v, %v; want the committed lease at %s", l, err, want.IP)
				}
				return nil
			})
		})
	}
}

// TestCommitLeaseEvent: the event of a known machine's new lease names
// the machine, the address and the MAC, and the DHCP server made it.
func TestCommitLeaseEvent(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: sampleSubnet("lab"), Time: t0})
	l := sampleLease("198.18.0.100")
	e.applyOK(2, CommitLease, l)
	e.view(func(tx *store.Tx) error {
		evs, err := tx.EventsSince(0, 10)
		if err != nil {
			return err
		}
		want := []*store.Event{{Seq: 1, Index: 2, Time: t0, MachineID: "m1", Kind: "dhcp.lease",
			Message: "leased 198.18.0.100 on lab", Fields: map[string]string{"ip": "198.18.0.100", "mac": l.MAC}, By: ActorDHCP}}
		if diff := cmp.Diff(want, evs); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		return nil
	})
}

// TestCommitLeaseFollowsItsSubnet: a lease is checked against its subnet
// as stored now, however often the subnet was read before (subnetPrefix
// remembers it by its bytes): moved to another prefix, the subnet
// refuses what it held and takes what it now holds.
func TestCommitLeaseFollowsItsSubnet(t *testing.T) {
	const mac = "aa:bb:cc:00:00:01"
	hour := t0.Add(time.Hour)
	e := newEnv(t)
	sub := sampleSubnet("lab")
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: sub, Time: t0})
	e.applyOK(2, CommitLease, lease("198.18.0.100", mac, store.LeaseActive, hour))
	moved := sampleSubnet("lab")
	moved.CIDR, moved.Gateway, moved.Pools = "198.19.0.0/24", "198.19.0.1", []store.Range{{Start: "198.19.0.100", End: "198.19.0.200"}}
	moved.DNS, moved.Reserved = nil, nil
	e.applyOK(3, PutSubnet, Put[store.Subnet]{Object: moved, Time: t0})
	if r := e.applyCmd(4, CommitLease, lease("198.18.0.101", mac, store.LeaseActive, hour)); errCode(r) != errs.CodeInvalid {
		t.Errorf("a lease in the subnet's old prefix: %+v (err %v), want an invalid refusal", r, r.Err)
	}
	e.applyOK(5, CommitLease, lease("198.19.0.100", mac, store.LeaseActive, hour))
}

// TestLeaseCommitsWakeLeaseWatchers: a batch of the DHCP server's lease
// commits wakes the store's watchers of every write (events, leases),
// not those of ChangedBesidesLeases (jobs, artifacts); a batch with
// anything else in it, or a Noop, wakes both.
func TestLeaseCommitsWakeLeaseWatchers(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: sampleSubnet("lab"), Time: t0})
	second := *sampleLease("198.18.0.101")
	second.MAC = "02:00:00:00:00:99"
	batches := []struct {
		name          string
		entries       []command.Entry
		besidesLeases bool
	}{
		{"leases", []command.Entry{cmdEntry(t, 2, CommitLease, sampleLease("198.18.0.100")), cmdEntry(t, 2, CommitLease, &second)}, false},
		{"a lease and an operator's lease", []command.Entry{cmdEntry(t, 3, CommitLease, sampleLease("198.18.0.100")),
			cmdEntry(t, 3, PutLease, Put[store.Lease]{Object: lease("198.18.0.102", "02:00:00:00:00:98", store.LeaseActive, t0.Add(time.Hour)), Time: t0})}, true},
		{"a noop", []command.Entry{{Index: 4}}, true},
	}
	for _, b := range batches {
		all, besides := e.db.Changed(), e.db.ChangedBesidesLeases()
		for _, r := range e.applyAll(b.entries...) {
			if r.Err != nil {
				t.Fatalf("%s: %v", b.name, r.Err)
			}
		}
		if !testwait.Closed(all) {
			t.Errorf("%s: Changed did not fire", b.name)
		}
		if got := testwait.Closed(besides); got != b.besidesLeases {
			t.Errorf("%s: ChangedBesidesLeases fired: %v, want %v", b.name, got, b.besidesLeases)
		}
	}
}
