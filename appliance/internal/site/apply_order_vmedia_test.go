package site

import (
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// vmediaSite is orderSite whose subnet lab boots from virtual media
// (index 7).
func vmediaSite(t *testing.T) *env {
	t.Helper()
	e := orderSite(t)
	sub := sampleSubnet("lab")
	sub.Boot = store.BootVirtualMedia
	e.applyOK(7, PutSubnet, Put[store.Subnet]{Object: sub, Time: t0})
	return e
}

// TestVirtualMediaOrder: on a subnet that boots from virtual media, a
// provision or deprovision order's jobs insert the media and boot the
// CD once before the power cycle, in that order, and its workflow is
// bound to the machine's static address from IPAM.
func TestVirtualMediaOrder(t *testing.T) {
	forEachOrderCommand(t, func(t *testing.T, placeOrderCmd Type) {
		e := vmediaSite(t)
		o := placeOrder(t, e, placeOrderCmd, 10, &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian"})
		if got := strings.Join(o.Jobs, ","); got != "o1-media,o1-cd,o1-cycle" {
			t.Fatalf("jobs %s, want o1-media,o1-cd,o1-cycle", got)
		}
		addr := machineOf(t, e, "m1").Interfaces[0].IP
		if addr != sampleSubnet("lab").Pools[0].Start {
			t.Errorf("boot interface address %q, want the pool's first", addr)
		}
		var w *store.Workflow
		e.view(func(tx *store.Tx) (err error) { w, err = store.Get[store.Workflow](tx, "o1"); return err })
		if w.BootAddr != addr {
			t.Errorf("workflow bound to %q, want the machine's address %s", w.BootAddr, addr)
		}
		idx := uint64(10)
		for i, want := range []struct{ id, action string }{{"o1-media", store.JobInsertMedia}, {"o1-cd", store.JobBootCD}, {"o1-cycle", store.JobPowerCycle}} {
			var pending []*store.Job
			e.view(func(tx *store.Tx) (err error) { pending, err = tx.PendingJobs(t0); return err })
			if len(pending) != 1 || pending[0].ID != want.id || pending[0].Action != want.action {
				t.Fatalf("step %d: pending %v, want %s (%s) alone", i, pending, want.id, want.action)
			}
			runJob(t, e, &idx, want.id, JobResult{OK: true, Power: "on"})
		}
	})
}

// TestVirtualMediaOrderOnPXESubnet: the same machine on a subnet that
// boots from the network (boot: pxe, as one that names none) is booted
// by PXE and its workflow is left for the first claim.
func TestVirtualMediaOrderOnPXESubnet(t *testing.T) {
	e := orderSite(t)
	sub := sampleSubnet("lab")
	sub.Boot = store.BootPXE
	e.applyOK(7, PutSubnet, Put[store.Subnet]{Object: sub, Time: t0})
	o := placeOrder(t, e, PlaceOrder, 10, &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian"})
	if got := strings.Join(o.Jobs, ","); got != "o1-pxe,o1-cycle" {
		t.Errorf("jobs %s, want o1-pxe,o1-cycle", got)
	}
	var w *store.Workflow
	e.view(func(tx *store.Tx) (err error) { w, err = store.Get[store.Workflow](tx, "o1"); return err })
	if w.BootAddr != "" {
		t.Errorf("workflow bound to %q on a PXE subnet", w.BootAddr)
	}
}

// TestVirtualMediaDeprovisionNeedsAddress: a deprovision reserves no
// address, so a machine on a virtual media subnet without one is
// refused, naming the machine and subnet, and nothing changes.
func TestVirtualMediaDeprovisionNeedsAddress(t *testing.T) {
	e := vmediaSite(t)
	m := sampleMachine("m2", "aa:bb:cc:00:00:02")
	m.Interfaces[0].Subnet = "lab"
	e.applyOK(8, PutMachine, Put[store.Machine]{Object: m, Time: t0})
	before := eventKinds(t, e)
	r := e.applyCmd(10, PlaceOrder, Put[store.Order]{Object: &store.Order{ID: "o2", Action: store.OrderDeprovision, MachineID: "m2"}, Time: t0})
	if errCode(r) != errs.CodeInvalid || !strings.Contains(resultErr(r).Error(), "virtual media on subnet lab") {
		t.Fatalf("%v, want invalid naming the subnet", resultErr(r))
	}
	if after := eventKinds(t, e); len(after) != len(before) {
		t.Errorf("a refused order left events: %v", after[len(before):])
	}
	var jobs []*store.Job
	var ws []*store.Workflow
	e.view(func(tx *store.Tx) (err error) {
		if jobs, err = store.List[store.Job](tx); err != nil {
			return err
		}
		ws, err = store.List[store.Workflow](tx)
		return err
	})
	if len(jobs) != 0 || len(ws) != 0 {
		t.Errorf("a refused order left %d jobs, %d workflows", len(jobs), len(ws))
	}
}

// TestVirtualMediaOrderJobIDTaken: an order whose virtual media job id
// an earlier job took is refused, as a conflict naming it, and nothing
// changes; on a PXE subnet the same order is placed, as before virtual
// media (a replayed log decides as it did).
func TestVirtualMediaOrderJobIDTaken(t *testing.T) {
	for _, boot := range []string{store.BootVirtualMedia, store.BootPXE} {
		t.Run(boot, func(t *testing.T) {
			e := orderSite(t)
			sub := sampleSubnet("lab")
			sub.Boot = boot
			e.applyOK(7, PutSubnet, Put[store.Subnet]{Object: sub, Time: t0})
			e.applyOK(8, QueueBootPXE, BootPXE{Job: "o1-cd", Machine: "m1", Time: t0})
			before := eventKinds(t, e)
			r := e.applyCmd(10, PlaceOrder, Put[store.Order]{Object: &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian"}, Time: t0})
			if boot == store.BootPXE {
				if err := resultErr(r); err != nil {
					t.Fatalf("on a PXE subnet: %v", err)
				}
				return
			}
			if errCode(r) != errs.CodeConflict || !strings.Contains(resultErr(r).Error(), "o1-cd") {
				t.Fatalf("%v, want a conflict naming o1-cd", resultErr(r))
			}
			if after := eventKinds(t, e); len(after) != len(before) {
				t.Errorf("a refused order left events: %v", after[len(before):])
			}
			if m := machineOf(t, e, "m1"); m.Workflow != "" || m.Interfaces[0].IP != "" {
				t.Errorf("a refused order left machine %+v", m)
			}
		})
	}
}
