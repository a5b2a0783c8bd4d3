package site

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestActor: every event a proposal records names who made it: the actor
// its context names (an API caller's token), or else the part of the site
// whose proposer method it is; and an event cannot name its own author.
func TestActor(t *testing.T) {
	alice := WithActor(context.Background(), "alice")
	none := context.Background()
	tests := map[string]struct {
		propose func(p *Proposer, later func()) error
		want    []string // the new events, "kind by actor"
	}{
		"an operator's order": {
			propose: func(p *Proposer, later func()) error {
				_, err := p.PlaceOrder(alice, &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"})
				return err
			},
			want: []string{"bmc.job.created by alice", "order.created by alice"},
		},
		"an order without a caller is the site's": {
			propose: func(p *Proposer, later func()) error {
				_, err := p.PlaceOrder(none, &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"})
				return err
			},
			want: []string{"bmc.job.created by site", "order.created by site"},
		},
		"a workflow, the agent's report, a cancel": {
			propose: func(p *Proposer, later func()) error {
				if _, err := p.CreateWorkflow(alice, fxWorkflow("w1", "m1")); err != nil {
					return err
				}
				if _, err := p.Report(none, "w1", Report{Action: "wipe", Attempt: 1, Kind: ReportStart}); err != nil {
					return err
				}
				_, err := p.CancelWorkflow(WithActor(none, "carol"), "w1", "enough")
				return err
			},
			want: []string{"workflow.created by alice", "machine.state by alice", "workflow.running by site/agent", "action.running by site/agent",
				"action.failed by carol", "action.skipped by carol", "workflow.failed by carol", "machine.state by carol"},
		},
		"the workflow timer": {
			propose: func(p *Proposer, later func()) error {
				w := fxWorkflow("w1", "m1")
				w.Timeout = store.Duration(time.Minute)
				if _, err := p.CreateWorkflow(alice, w); err != nil {
					return err
				}
				later()
				_, err := p.Tick(none, "w1")
				return err
			},
			want: []string{"workflow.created by alice", "machine.state by alice", "action.skipped by site/timer",
				"action.skipped by site/timer", "workflow.timed_out by site/timer", "machine.state by site/timer"},
		},
		"the job runner": {
			propose: func(p *Proposer, later func()) error {
				if _, err := p.PlaceOrder(alice, &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}); err != nil {
					return err
				}
				if err := p.StartJob(none, "o1-power", 1, ts1); err != nil {
					return err
				}
				return p.FinishJob(none, "o1-power", 1, JobResult{OK: true, Power: "on"})
			},
			want: []string{"bmc.job.created by alice", "order.created by alice", "bmc.job.running by site/jobs",
				"bmc.job.succeeded by site/jobs", "power.on by site/jobs", "order.succeeded by site/jobs"},
		},
		"central's desired state": {
			propose: func(p *Proposer, later func()) error {
				_, _, err := p.ApplyDesired(none, &Desired{Revision: 1, Changes: []DesiredChange{
					{Kind: DesiredOrder, Key: "c1", Object: []byte(`{"action":"power_off","machine_id":"m1"}`)}}})
				return err
			},
			want: []string{"bmc.job.created by central", "order.created by central"},
		},
		"a lease": {
			propose: func(p *Proposer, later func()) error {
				_, err := p.CommitLease(alice, fxLease("198.18.0.100"))
				return err
			},
			want: []string{"dhcp.lease by site/dhcp"},
		},
		"a note cannot name its author": {
			propose: func(p *Proposer, later func()) error {
				_, err := p.RecordEvent(alice, store.Event{Kind: "note", Message: "hi", By: "mallory"})
				return err
			},
			want: []string{"note by alice"},
		},
		"a discovery": {
			propose: func(p *Proposer, later func()) error {
				_, err := p.Discover(none, Hardware{MAC: "02:00:00:00:00:09", CPUs: 2, NICs: []NIC{{Name: "eth0", MAC: "02:00:00:00:00:09"}}})
				return err
			},
			want: []string{"machine.discovered by site/agent"},
		},
		"settings and tokens an admin changes": {
			propose: func(p *Proposer, later func()) error {
				if _, err := p.PutSettings(alice, fxSettings(), 0); err != nil {
					return err
				}
				if err := p.CreateToken(alice, fxToken("t2")); err != nil {
					return err
				}
				return p.Delete(alice, Tokens, "t2", 0)
			},
			want: []string{"settings.changed by alice", "token.created by alice", "token.deleted by alice"},
		},
		"the site's own first token is no event": {
			propose: func(p *Proposer, _ func()) error { return p.CreateToken(none, fxToken("t2")) },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
			e.applyOK(2, PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0})
			e.applyOK(3, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
			e.applyOK(4, PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0})
			now := ts0
			p := NewProposer(ProposerConfig{Log: NewLocalLog(e.db, nil), Store: e.db, Now: func() time.Time { return now }})
			if err := tc.propose(p, func() { now = ts0.Add(time.Hour) }); err != nil {
				t.Fatal(err)
			}
			var got []string
			e.view(func(tx *store.Tx) error {
				events, err := tx.EventsSince(0, 100)
				for _, ev := range events {
					got = append(got, fmt.Sprintf("%s by %s", ev.Kind, ev.By))
				}
				return err
			})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestActorOfEarlierRelease: a command of a release before actors has
// none, and neither have the events it records: replaying it comes to
// what that release recorded.
func TestActorOfEarlierRelease(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, AppendEvents, Events{Time: ts0, Events: []store.Event{{Kind: "note", Message: "old"}}})
	e.view(func(tx *store.Tx) error {
		events, err := tx.EventsSince(0, 10)
		if err != nil || len(events) != 1 || events[0].By != "" {
			t.Errorf("events %+v, %v: want one with no actor", events, err)
		}
		return nil
	})
}
