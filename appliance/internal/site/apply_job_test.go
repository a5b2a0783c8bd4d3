package site

import (
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestSetPowerStale: a power reading taken before the machine last
// changed (a job powered it off meanwhile) changes nothing; a current one
// is recorded.
func TestSetPowerStale(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
	e.applyOK(2, SetPower, Power{Machine: "m1", Power: "off", Expect: 1, Time: ts0}) // read at version 1: current
	e.applyOK(3, SetPower, Power{Machine: "m1", Power: "on", Expect: 1, Time: ts0})  // read at version 1: stale now
	e.view(func(tx *store.Tx) error {
		m, err := store.Get[store.Machine](tx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Power != "off" || m.Version != 2 {
			t.Errorf("machine power %q at version %d, want off at 2: the stale reading must change nothing", m.Power, m.Version)
		}
		return nil
	})
}

// TestJobStartOnce: a job runs one attempt at a time; an attempt whose
// deadline has passed may be started again, and the abandoned attempt's
// late result is refused.
func TestJobStartOnce(t *testing.T) {
	forEachOrderCommand(t, func(t *testing.T, placeOrderCmd Type) {
		e := orderSite(t)
		placeOrder(t, e, placeOrderCmd, 10, &store.Order{ID: "o1", Action: store.OrderPowerCycle, MachineID: "m1"})
		startAt := func(i uint64, attempt int, now time.Time) error {
			return resultErr(e.applyCmd(i, StartJob, JobStart{Job: "o1-power", Attempt: attempt, Deadline: now.Add(time.Minute), Time: now}))
		}
		if err := startAt(11, 1, t0); err != nil {
			t.Fatal(err)
		}
		if err := startAt(12, 2, t0.Add(30*time.Second)); err == nil {
			t.Error("a running job started again before its deadline")
		}
		var pending []*store.Job
		e.view(func(tx *store.Tx) (err error) { pending, err = tx.PendingJobs(t0.Add(30 * time.Second)); return err })
		if len(pending) != 0 {
			t.Errorf("a running job is offered before its deadline: %v", pending)
		}
		e.view(func(tx *store.Tx) (err error) { pending, err = tx.PendingJobs(t0.Add(time.Minute)); return err })
		if len(pending) != 1 {
			t.Errorf("an abandoned job is not offered at its deadline: %v", pending)
		}
		if err := startAt(13, 2, t0.Add(time.Minute)); err != nil {
			t.Errorf("an abandoned job could not start again: %v", err)
		}
		// The first attempt's late result is refused; the second's is taken.
		if err := resultErr(e.applyCmd(14, FinishJob, JobFinish{Job: "o1-power", Attempt: 1, Result: JobResult{OK: true}, Time: t0})); err == nil {
			t.Error("a result for an abandoned attempt was taken")
		}
		e.applyOK(15, FinishJob, JobFinish{Job: "o1-power", Attempt: 2, Result: JobResult{OK: true, Power: "on"}, Time: t0})
	})
}
