package store_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

// orderSite is workflowSite with the templates orders use by default.
func orderSite(t *testing.T) *store.DB {
	t.Helper()
	db := workflowSite(t)
	update(t, db, func(tx *store.Tx) error {
		wipe := &store.Template{Name: store.DefaultDeprovisionTemplate, Actions: []store.Action{
			{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda"}}}}
		if err := tx.UnsafePut(wipe, store.Write{Index: 5, Time: t0}); err != nil {
			return err
		}
		return tx.UnsafePut(sampleSubnet("lab"), store.Write{Index: 6, Time: t0})
	})
	return db
}

func getOrder(t *testing.T, db *store.DB, id string) *store.Order {
	t.Helper()
	var o *store.Order
	view(t, db, func(tx *store.Tx) (err error) { o, err = store.Get[store.Order](tx, id); return err })
	return o
}

// runJob starts and finishes a job as the leader's executor does.
func runJob(t *testing.T, db *store.DB, index *uint64, id string, r store.JobResult) {
	t.Helper()
	update(t, db, func(tx *store.Tx) error {
		*index++
		j, err := tx.UnsafeStartJob(id, 1, t0.Add(time.Minute), store.Write{Index: *index, Time: t0})
		if err != nil {
			return err
		}
		*index++
		_, err = tx.UnsafeFinishJob(id, j.Attempt, r, store.Write{Index: *index, Time: t0})
		return err
	})
}

func TestProvisionOrder(t *testing.T) {
	db := orderSite(t)
	o := &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian", Nonce: "n"}
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(o, store.Write{Index: 10, Time: t0}) })
	if o.State != store.OrderRunning || o.Workflow != "o1" || strings.Join(o.Jobs, ",") != "o1-pxe,o1-cycle" {
		t.Fatalf("order = %+v, want running with workflow o1 and jobs o1-pxe, o1-cycle", o)
	}
	if m := machineOf(t, db, "m1"); m.State != store.StateProvisioning || m.Workflow != "o1" {
		t.Errorf("machine %s with workflow %q", m.State, m.Workflow)
	}
	if m := machineOf(t, db, "m1"); m.Interfaces[0].IP != sampleSubnet("lab").Pools[0].Start || m.Interfaces[0].Subnet != "lab" {
		t.Errorf("boot interface %+v: want the pool's first address reserved", m.Interfaces[0])
	}
	var pending []*store.Job
	view(t, db, func(tx *store.Tx) (err error) { pending, err = tx.PendingJobs(t0); return err })
	if len(pending) != 1 || pending[0].ID != "o1-pxe" {
		t.Errorf("pending jobs: %v, want o1-pxe alone (the cycle waits for it)", pending)
	}
	idx := uint64(10)
	runJob(t, db, &idx, "o1-pxe", store.JobResult{OK: true, Warning: "the BMC refused the boot device"})
	runJob(t, db, &idx, "o1-cycle", store.JobResult{OK: true, Power: "on"})
	if o := getOrder(t, db, "o1"); o.State != store.OrderRunning {
		t.Errorf("order after its jobs, before its workflow: %s", o.State)
	}
	for _, a := range []string{"wipe", "write", "reboot"} {
		for _, step := range []func(workflow.State) (workflow.State, []workflow.Transition, error){start(a, 1, t0), finish(a, 1, true, "", t0)} {
			idx++
			update(t, db, func(tx *store.Tx) error {
				_, err := tx.UnsafeAdvanceWorkflow("o1", store.Write{Index: idx, Time: t0}, step)
				return err
			})
		}
	}
	if o := getOrder(t, db, "o1"); o.State != store.OrderSucceeded {
		t.Errorf("order after its workflow succeeded: %s %q", o.State, o.Reason)
	}
	m := machineOf(t, db, "m1")
	if m.State != store.StateProvisioned || m.Power != "on" {
		t.Errorf("machine %s, power %q: want provisioned and on", m.State, m.Power)
	}
	kinds := strings.Join(eventKinds(t, db), " ")
	for _, k := range []string{"order.created", "bmc.warning", "power.on", "order.succeeded"} {
		if !strings.Contains(kinds, k) {
			t.Errorf("no %s event in %s", k, kinds)
		}
	}
}

func TestOrderFailsWithItsJob(t *testing.T) {
	db := orderSite(t)
	update(t, db, func(tx *store.Tx) error {
		return tx.UnsafePut(&store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian"},
			store.Write{Index: 10, Time: t0})
	})
	idx := uint64(10)
	runJob(t, db, &idx, "o1-pxe", store.JobResult{OK: true})
	runJob(t, db, &idx, "o1-cycle", store.JobResult{OK: false, Error: "10.0.0.9:623: no answer after 3 attempts"})
	o := getOrder(t, db, "o1")
	if o.State != store.OrderFailed || !strings.Contains(o.Reason, "no answer") {
		t.Errorf("order %s %q, want failed naming the BMC's error", o.State, o.Reason)
	}
	m := machineOf(t, db, "m1")
	if m.State != store.StateFailed || !strings.Contains(m.Reason, "no answer") {
		t.Errorf("machine %s %q: its workflow should be cancelled with the order's reason", m.State, m.Reason)
	}
}

func TestDeprovisionOrderPowersOff(t *testing.T) {
	db := orderSite(t)
	update(t, db, func(tx *store.Tx) error {
		return tx.UnsafePut(&store.Order{ID: "d1", Action: store.OrderDeprovision, MachineID: "m1"}, store.Write{Index: 10, Time: t0})
	})
	idx := uint64(10)
	runJob(t, db, &idx, "d1-pxe", store.JobResult{OK: true})
	runJob(t, db, &idx, "d1-cycle", store.JobResult{OK: true, Power: "on"})
	for _, step := range []func(workflow.State) (workflow.State, []workflow.Transition, error){start("wipe", 1, t0), finish("wipe", 1, true, "", t0)} {
		idx++
		update(t, db, func(tx *store.Tx) error {
			_, err := tx.UnsafeAdvanceWorkflow("d1", store.Write{Index: idx, Time: t0}, step)
			return err
		})
	}
	o := getOrder(t, db, "d1")
	if o.State != store.OrderRunning || !strings.HasSuffix(strings.Join(o.Jobs, ","), "d1-off") {
		t.Fatalf("order after the wipe: %+v, want running with a power-off job", o)
	}
	runJob(t, db, &idx, "d1-off", store.JobResult{OK: true, Power: "off"})
	if o := getOrder(t, db, "d1"); o.State != store.OrderSucceeded {
		t.Errorf("order after the power-off: %s", o.State)
	}
	if m := machineOf(t, db, "m1"); m.State != store.StateReady || m.Power != "off" {
		t.Errorf("machine %s, power %q: want ready and off", m.State, m.Power)
	}
}

func TestOrderRefused(t *testing.T) {
	db := orderSite(t)
	update(t, db, func(tx *store.Tx) error {
		m := sampleMachine("nobmc", "aa:bb:cc:00:00:09")
		m.BMC = nil
		return tx.UnsafePut(m, store.Write{Index: 9, Time: t0})
	})
	before := eventKinds(t, db)
	for name, o := range map[string]*store.Order{
		"no BMC":        {ID: "o1", Action: store.OrderPowerOn, MachineID: "nobmc"},
		"no machine":    {ID: "o2", Action: store.OrderPowerOn, MachineID: "ghost"},
		"bad template":  {ID: "o3", Action: store.OrderProvision, MachineID: "m1", Template: "ghost", Image: "debian"},
		"unknown image": {ID: "o4", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "ghost"},
	} {
		err := db.Update(func(tx *store.Tx) error { return tx.UnsafePut(o, store.Write{Index: 10, Time: t0}) })
		if code, _ := errField(t, err); code != errs.CodeInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if after := eventKinds(t, db); len(after) != len(before) {
		t.Errorf("refused orders left events: %v", after[len(before):])
	}
	var jobs []*store.Job
	view(t, db, func(tx *store.Tx) (err error) { jobs, err = store.List[store.Job](tx); return err })
	if len(jobs) != 0 {
		t.Errorf("refused orders left jobs: %v", jobs)
	}
}

func TestJobStartOnce(t *testing.T) {
	db := orderSite(t)
	update(t, db, func(tx *store.Tx) error {
		return tx.UnsafePut(&store.Order{ID: "o1", Action: store.OrderPowerCycle, MachineID: "m1"}, store.Write{Index: 10, Time: t0})
	})
	startAt := func(i uint64, attempt int, now time.Time) error {
		return db.Update(func(tx *store.Tx) error {
			_, err := tx.UnsafeStartJob("o1-power", attempt, now.Add(time.Minute), store.Write{Index: i, Time: now})
			return err
		})
	}
	if err := startAt(11, 1, t0); err != nil {
		t.Fatal(err)
	}
	if err := startAt(12, 2, t0.Add(30*time.Second)); err == nil {
		t.Error("a running job started again before its deadline")
	}
	var pending []*store.Job
	view(t, db, func(tx *store.Tx) (err error) { pending, err = tx.PendingJobs(t0.Add(30 * time.Second)); return err })
	if len(pending) != 0 {
		t.Errorf("a running job is offered before its deadline: %v", pending)
	}
	view(t, db, func(tx *store.Tx) (err error) { pending, err = tx.PendingJobs(t0.Add(time.Minute)); return err })
	if len(pending) != 1 {
		t.Errorf("an abandoned job is not offered at its deadline: %v", pending)
	}
	if err := startAt(13, 2, t0.Add(time.Minute)); err != nil {
		t.Errorf("an abandoned job could not start again: %v", err)
	}
	// The first attempt's late result is refused; the second's is taken.
	err := db.Update(func(tx *store.Tx) error {
		_, err := tx.UnsafeFinishJob("o1-power", 1, store.JobResult{OK: true}, store.Write{Index: 14, Time: t0})
		return err
	})
	if err == nil {
		t.Error("a result for an abandoned attempt was taken")
	}
	update(t, db, func(tx *store.Tx) error {
		_, err := tx.UnsafeFinishJob("o1-power", 2, store.JobResult{OK: true, Power: "on"}, store.Write{Index: 15, Time: t0})
		return err
	})
}

// TestProvisionOrderAddress: a provision order reserves its machine's
// address: the one its lease holds, else the lowest free one of the pool.
func TestProvisionOrderAddress(t *testing.T) {
	db := orderSite(t)
	pool := sampleSubnet("lab").Pools[0]
	first, _ := netip.ParseAddr(pool.Start)
	update(t, db, func(tx *store.Tx) error {
		// m2 reserves the first address; m3's MAC holds a lease on the fourth.
		m2 := sampleMachine("m2", "aa:bb:cc:00:00:02")
		m2.Interfaces[0].IP, m2.Interfaces[0].Subnet = first.String(), "lab"
		if err := tx.UnsafePut(m2, store.Write{Index: 7, Time: t0}); err != nil {
			return err
		}
		if err := tx.UnsafePut(sampleMachine("m3", "aa:bb:cc:00:00:03"), store.Write{Index: 8, Time: t0}); err != nil {
			return err
		}
		l := sampleLease(first.Next().Next().Next().String())
		l.MAC, l.MachineID = "aa:bb:cc:00:00:03", "m3"
		return tx.UnsafePut(l, store.Write{Index: 9, Time: t0})
	})
	for i, m := range []string{"m1", "m3"} {
		o := &store.Order{ID: "o-" + m, Action: store.OrderProvision, MachineID: m, Template: "install", Image: "debian"}
		update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(o, store.Write{Index: uint64(10 + i), Time: t0}) })
	}
	if got := machineOf(t, db, "m1").Interfaces[0].IP; got != first.Next().String() {
		t.Errorf("m1 got %s, want %s (the first is m2's)", got, first.Next())
	}
	if got := machineOf(t, db, "m3").Interfaces[0].IP; got != first.Next().Next().Next().String() {
		t.Errorf("m3 got %s, want the address of its lease", got)
	}
}
