package site

import (
	"strings"
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

// TestTakeOverJob: a new leader takes over a job an earlier leader left
// running, before its deadline, as its next attempt, and the event says
// so; the earlier attempt's late result is refused; a takeover that does
// not name the next attempt, or of a job that ended, is refused.
func TestTakeOverJob(t *testing.T) {
	e := orderSite(t)
	placeOrder(t, e, PlaceOrder, 10, &store.Order{ID: "o1", Action: store.OrderPowerCycle, MachineID: "m1"})
	take := func(i uint64, attempt int, now time.Time) error {
		return resultErr(e.applyCmd(i, TakeOverJob, JobStart{Job: "o1-power", Attempt: attempt, Deadline: now.Add(time.Minute), Time: now}))
	}
	if err := take(11, 1, t0); err != nil {
		t.Fatalf("a pending job taken over: %v, want started", err)
	}
	if ev := lastEvent(t, e); ev.Message != "power_cycle running (attempt 1)" {
		t.Errorf("event %q, want it running", ev.Message)
	}
	if err := take(12, 3, t0.Add(time.Second)); err == nil {
		t.Error("a takeover skipping an attempt was taken")
	}
	if err := take(13, 2, t0.Add(time.Second)); err != nil {
		t.Fatalf("taking over attempt 1 before its deadline: %v", err)
	}
	if ev := lastEvent(t, e); !strings.Contains(ev.Message, "taken over from attempt 1, which an earlier leader left running (attempt 2)") {
		t.Errorf("event %q, want the takeover named", ev.Message)
	}
	if err := resultErr(e.applyCmd(14, FinishJob, JobFinish{Job: "o1-power", Attempt: 1, Result: JobResult{OK: true}, Time: t0})); err == nil {
		t.Error("the result of the attempt taken over was taken")
	}
	e.applyOK(15, FinishJob, JobFinish{Job: "o1-power", Attempt: 2, Result: JobResult{OK: true, Power: "on"}, Time: t0})
	if err := take(16, 3, t0.Add(2*time.Second)); err == nil {
		t.Error("a job that ended was taken over")
	}
}

// TestQueueBootPXE: an operator's boot_pxe job is stored pending, with
// its options, and its created event names the operator; a machine
// without a BMC, an unknown machine or a bad job id is refused and
// changes nothing.
func TestQueueBootPXE(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
	bare := fxMachine("m2", "02:00:00:00:00:02")
	bare.BMC = nil
	e.applyOK(2, PutMachine, Put[store.Machine]{Object: bare, Time: ts0})
	before := len(eventKinds(t, e))
	index := uint64(2)
	for name, p := range map[string]BootPXE{
		"no bmc":          {Job: "boot-pxe-1", Machine: "m2", Time: ts0, By: "alice"},
		"unknown machine": {Job: "boot-pxe-1", Machine: "m9", Time: ts0, By: "alice"},
		"bad job id":      {Job: "Boot PXE", Machine: "m1", Time: ts0, By: "alice"},
	} {
		index++
		if code := errCode(e.applyCmd(index, QueueBootPXE, p)); code != "invalid" {
			t.Errorf("%s: code %q, want invalid", name, code)
		}
	}
	e.view(func(tx *store.Tx) error {
		if n := store.Count[store.Job](tx); n != 0 {
			t.Errorf("%d jobs after refused commands, want none", n)
		}
		return nil
	})
	if n := len(eventKinds(t, e)); n != before {
		t.Errorf("refused commands recorded %d events", n-before)
	}
	e.applyOK(10, QueueBootPXE, BootPXE{Job: "boot-pxe-1", Machine: "m1", Persistent: true, EFI: true, Time: ts0, By: "alice"})
	e.view(func(tx *store.Tx) error {
		j, err := store.Get[store.Job](tx, "boot-pxe-1")
		if err != nil {
			t.Fatal(err)
		}
		if j.Action != store.JobBootPXE || j.State != store.JobPending || !j.Persistent || !j.EFI || j.Order != "" {
			t.Errorf("job %+v: want a pending boot_pxe, persistent, EFI, of no order", j)
		}
		evs, err := tx.EventsSince(0, 100)
		last := evs[len(evs)-1]
		if last.Kind != "bmc.job.created" || last.By != "alice" || last.MachineID != "m1" {
			t.Errorf("last event %+v: want bmc.job.created of m1 by alice", last)
		}
		return err
	})
	// The same job id again: a conflict.
	if code := errCode(e.applyCmd(11, QueueBootPXE, BootPXE{Job: "boot-pxe-1", Machine: "m1", Time: ts0, By: "bob"})); code != "conflict" {
		t.Errorf("a job id taken: code %q, want conflict", code)
	}
}
