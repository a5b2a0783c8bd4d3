package site

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// orderCommands place an order: the current command and the previous
// release's, which keeps its rules for the logs that hold it. Apart from
// the address a provision reserves (TestProvisionOrderAddress), their
// rules are the same.
var orderCommands = map[string]Type{"PlaceOrder": PlaceOrder, "PutOrderV1": PutOrderV1}

// forEachOrderCommand runs test with each command of orderCommands.
func forEachOrderCommand(t *testing.T, test func(t *testing.T, placeOrder Type)) {
	for name, typ := range orderCommands {
		t.Run(name, func(t *testing.T) { test(t, typ) })
	}
}

// orderSite is workflowSite with the templates orders use by default and
// subnet lab, at indexes 5 and 6.
func orderSite(t *testing.T) *env {
	t.Helper()
	e := workflowSite(t)
	wipe := &store.Template{Name: DefaultDeprovisionTemplate, Actions: []store.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda"}}}}
	e.applyOK(5, PutTemplate, Put[store.Template]{Object: wipe, Time: t0})
	e.applyOK(6, PutSubnet, Put[store.Subnet]{Object: sampleSubnet("lab"), Time: t0})
	return e
}

func getOrder(t *testing.T, e *env, id string) *store.Order {
	t.Helper()
	var o *store.Order
	e.view(func(tx *store.Tx) (err error) { o, err = store.Get[store.Order](tx, id); return err })
	return o
}

// placeOrder applies o with the command typ at index i; it must succeed.
func placeOrder(t *testing.T, e *env, typ Type, i uint64, o *store.Order) *store.Order {
	t.Helper()
	got, err := DecodeValue[store.Order](e.applyOK(i, typ, Put[store.Order]{Object: o, Time: t0}))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// runJob starts and finishes a job as the leader's executor does.
func runJob(t *testing.T, e *env, index *uint64, id string, r JobResult) {
	t.Helper()
	*index++
	j, err := DecodeValue[store.Job](e.applyOK(*index, StartJob, JobStart{Job: id, Attempt: 1, Deadline: t0.Add(time.Minute), Time: t0}))
	if err != nil {
		t.Fatal(err)
	}
	*index++
	e.applyOK(*index, FinishJob, JobFinish{Job: id, Attempt: j.Attempt, Result: r, Time: t0})
}

func TestProvisionOrder(t *testing.T) {
	forEachOrderCommand(t, func(t *testing.T, placeOrderCmd Type) {
		e := orderSite(t)
		o := placeOrder(t, e, placeOrderCmd, 10, &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian", Nonce: "n"})
		if o.State != store.OrderRunning || o.Workflow != "o1" || strings.Join(o.Jobs, ",") != "o1-pxe,o1-cycle" {
			t.Fatalf("order = %+v, want running with workflow o1 and jobs o1-pxe, o1-cycle", o)
		}
		if m := machineOf(t, e, "m1"); m.State != store.StateProvisioning || m.Workflow != "o1" {
			t.Errorf("machine %s with workflow %q", m.State, m.Workflow)
		}
		if m := machineOf(t, e, "m1"); m.Interfaces[0].IP != sampleSubnet("lab").Pools[0].Start || m.Interfaces[0].Subnet != "lab" {
			t.Errorf("boot interface %+v: want the pool's first address reserved", m.Interfaces[0])
		}
		var pending []*store.Job
		e.view(func(tx *store.Tx) (err error) { pending, err = tx.PendingJobs(t0); return err })
		if len(pending) != 1 || pending[0].ID != "o1-pxe" {
			t.Errorf("pending jobs: %v, want o1-pxe alone (the cycle waits for it)", pending)
		}
		idx := uint64(10)
		runJob(t, e, &idx, "o1-pxe", JobResult{OK: true, Warning: "the BMC refused the boot device"})
		runJob(t, e, &idx, "o1-cycle", JobResult{OK: true, Power: "on"})
		if o := getOrder(t, e, "o1"); o.State != store.OrderRunning {
			t.Errorf("order after its jobs, before its workflow: %s", o.State)
		}
		for _, a := range []string{"wipe", "write", "reboot"} {
			for _, rep := range []report{start(a, 1, t0), finish(a, 1, true, "", t0)} {
				idx++
				if _, err := advanceAt(t, e, "o1", idx, rep); err != nil {
					t.Fatalf("%s at %d: %v", a, idx, err)
				}
			}
		}
		if o := getOrder(t, e, "o1"); o.State != store.OrderSucceeded {
			t.Errorf("order after its workflow succeeded: %s %q", o.State, o.Reason)
		}
		m := machineOf(t, e, "m1")
		if m.State != store.StateProvisioned || m.Power != "on" {
			t.Errorf("machine %s, power %q: want provisioned and on", m.State, m.Power)
		}
		kinds := strings.Join(eventKinds(t, e), " ")
		for _, k := range []string{"order.created", "bmc.warning", "power.on", "order.succeeded"} {
			if !strings.Contains(kinds, k) {
				t.Errorf("no %s event in %s", k, kinds)
			}
		}
	})
}

func TestOrderFailsWithItsJob(t *testing.T) {
	forEachOrderCommand(t, func(t *testing.T, placeOrderCmd Type) {
		e := orderSite(t)
		placeOrder(t, e, placeOrderCmd, 10, &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian"})
		idx := uint64(10)
		runJob(t, e, &idx, "o1-pxe", JobResult{OK: true})
		runJob(t, e, &idx, "o1-cycle", JobResult{OK: false, Error: "10.0.0.9:623: no answer after 3 attempts"})
		o := getOrder(t, e, "o1")
		if o.State != store.OrderFailed || !strings.Contains(o.Reason, "no answer") {
			t.Errorf("order %s %q, want failed naming the BMC's error", o.State, o.Reason)
		}
		m := machineOf(t, e, "m1")
		if m.State != store.StateFailed || !strings.Contains(m.Reason, "no answer") {
			t.Errorf("machine %s %q: its workflow should be cancelled with the order's reason", m.State, m.Reason)
		}
	})
}

func TestDeprovisionOrderPowersOff(t *testing.T) {
	forEachOrderCommand(t, func(t *testing.T, placeOrderCmd Type) {
		e := orderSite(t)
		placeOrder(t, e, placeOrderCmd, 10, &store.Order{ID: "d1", Action: store.OrderDeprovision, MachineID: "m1"})
		idx := uint64(10)
		runJob(t, e, &idx, "d1-pxe", JobResult{OK: true})
		runJob(t, e, &idx, "d1-cycle", JobResult{OK: true, Power: "on"})
		for _, rep := range []report{start("wipe", 1, t0), finish("wipe", 1, true, "", t0)} {
			idx++
			if _, err := advanceAt(t, e, "d1", idx, rep); err != nil {
				t.Fatal(err)
			}
		}
		o := getOrder(t, e, "d1")
		if o.State != store.OrderRunning || !strings.HasSuffix(strings.Join(o.Jobs, ","), "d1-off") {
			t.Fatalf("order after the wipe: %+v, want running with a power-off job", o)
		}
		runJob(t, e, &idx, "d1-off", JobResult{OK: true, Power: "off"})
		if o := getOrder(t, e, "d1"); o.State != store.OrderSucceeded {
			t.Errorf("order after the power-off: %s", o.State)
		}
		if m := machineOf(t, e, "m1"); m.State != store.StateReady || m.Power != "off" {
			t.Errorf("machine %s, power %q: want ready and off", m.State, m.Power)
		}
	})
}

func TestOrderRefused(t *testing.T) {
	forEachOrderCommand(t, func(t *testing.T, placeOrderCmd Type) {
		e := orderSite(t)
		m := sampleMachine("nobmc", "aa:bb:cc:00:00:09")
		m.BMC = nil
		e.applyOK(9, PutMachine, Put[store.Machine]{Object: m, Time: t0})
		before := eventKinds(t, e)
		idx := uint64(9)
		for name, o := range map[string]*store.Order{
			"no BMC":        {ID: "o1", Action: store.OrderPowerOn, MachineID: "nobmc"},
			"no machine":    {ID: "o2", Action: store.OrderPowerOn, MachineID: "ghost"},
			"bad template":  {ID: "o3", Action: store.OrderProvision, MachineID: "m1", Template: "ghost", Image: "debian"},
			"unknown image": {ID: "o4", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "ghost"},
		} {
			idx++
			r := e.applyCmd(idx, placeOrderCmd, Put[store.Order]{Object: o, Time: t0})
			if errCode(r) != errs.CodeInvalid {
				t.Errorf("%s: %v, want invalid", name, resultErr(r))
			}
		}
		if after := eventKinds(t, e); len(after) != len(before) {
			t.Errorf("refused orders left events: %v", after[len(before):])
		}
		var jobs []*store.Job
		e.view(func(tx *store.Tx) (err error) { jobs, err = store.List[store.Job](tx); return err })
		if len(jobs) != 0 {
			t.Errorf("refused orders left jobs: %v", jobs)
		}
	})
}

// provisionAddressSite is orderSite where m2 reserves the pool's first
// address and m3's MAC holds a lease on the fourth, at indexes 7-9.
func provisionAddressSite(t *testing.T) (e *env, first netip.Addr) {
	t.Helper()
	e = orderSite(t)
	first = netip.MustParseAddr(sampleSubnet("lab").Pools[0].Start)
	m2 := sampleMachine("m2", "aa:bb:cc:00:00:02")
	m2.Interfaces[0].IP, m2.Interfaces[0].Subnet = first.String(), "lab"
	e.applyOK(7, PutMachine, Put[store.Machine]{Object: m2, Time: t0})
	e.applyOK(8, PutMachine, Put[store.Machine]{Object: sampleMachine("m3", "aa:bb:cc:00:00:03"), Time: t0})
	l := sampleLease(first.Next().Next().Next().String())
	l.MAC, l.MachineID = "aa:bb:cc:00:00:03", "m3"
	e.applyOK(9, PutLease, Put[store.Lease]{Object: l, Time: t0})
	return e, first
}

// provision places a provision order for each machine in turn, from
// index first on, with typ: an order command, or a desired-state command
// whose revisions carry one order each.
func provision(t *testing.T, e *env, typ Type, first uint64, machines ...string) {
	t.Helper()
	for i, m := range machines {
		o := &store.Order{ID: "o-" + m, Action: store.OrderProvision, MachineID: m, Template: "install", Image: "debian"}
		index := first + uint64(i)
		if typ != ApplyDesired && typ != ApplyDesiredV1 {
			placeOrder(t, e, typ, index, o)
			continue
		}
		r := e.applyOK(index, typ, DesiredPayload{Desired: Desired{Revision: uint64(i + 1), Changes: []DesiredChange{putChange(t, DesiredOrder, o.ID, o)}}, Time: t0})
		if res, err := DecodeValue[DesiredResult](r); err != nil || !res.Applied || res.Refused != 0 {
			t.Fatalf("revision %d placing %s: %+v, %v", i+1, o.ID, res, err)
		}
	}
}

// TestProvisionOrderAddress: a provision order reserves its machine's
// address: the one its lease holds, else the lowest free one of the pool.
// That is the rule of the previous release's commands, which keep it.
func TestProvisionOrderAddress(t *testing.T) {
	for name, typ := range map[string]Type{"PutOrderV1": PutOrderV1, "ApplyDesiredV1": ApplyDesiredV1} {
		t.Run(name, func(t *testing.T) {
			e, first := provisionAddressSite(t)
			provision(t, e, typ, 10, "m1", "m3")
			if got := machineOf(t, e, "m1").Interfaces[0].IP; got != first.Next().String() {
				t.Errorf("m1 got %s, want %s (the first is m2's)", got, first.Next())
			}
			if got := machineOf(t, e, "m3").Interfaces[0].IP; got != first.Next().Next().Next().String() {
				t.Errorf("m3 got %s, want the address of its lease", got)
			}
		})
	}
}

// TestProvisionOrderAddressAllocator: the current commands reserve the
// address the site's allocator chooses: the one the MAC's lease holds,
// else a free pool address.
func TestProvisionOrderAddressAllocator(t *testing.T) {
	for name, typ := range map[string]Type{"PlaceOrder": PlaceOrder, "ApplyDesired": ApplyDesired} {
		t.Run(name, func(t *testing.T) {
			e, first := provisionAddressSite(t)
			provision(t, e, typ, 10, "m1", "m3")
			if got := machineOf(t, e, "m3").Interfaces[0].IP; got != first.Next().Next().Next().String() {
				t.Errorf("m3 got %s, want the address of its lease", got)
			}
			checkFreePoolAddress(t, e, "m1")
		})
	}
}

// TestProvisionOrderAddressPolicy: in a subnet whose pool holds its
// gateway, a reserved range, an address another machine reserves, one
// another MAC leases and one whose lease has expired, the current
// commands give each machine a distinct free pool address.
func TestProvisionOrderAddressPolicy(t *testing.T) {
	for name, typ := range map[string]Type{"PlaceOrder": PlaceOrder, "ApplyDesired": ApplyDesired} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			sub := &store.Subnet{Name: "edge", CIDR: "198.18.1.0/24", Gateway: "198.18.1.1",
				Pools:    []store.Range{{Start: "198.18.1.1", End: "198.18.1.12"}},
				Reserved: []store.Range{{Start: "198.18.1.2", End: "198.18.1.4"}}}
			fixed := sampleMachine("fixed", "aa:bb:cc:00:01:00")
			fixed.Interfaces[0].IP, fixed.Interfaces[0].Subnet = "198.18.1.5", "edge"
			held := &store.Lease{IP: "198.18.1.6", MAC: "aa:bb:cc:00:02:00", Subnet: "edge", State: store.LeaseActive, Starts: t0, Expires: t0.Add(time.Hour)}
			expired := &store.Lease{IP: "198.18.1.7", MAC: "aa:bb:cc:00:03:00", Subnet: "edge", State: store.LeaseActive, Starts: t0.Add(-2 * time.Hour), Expires: t0.Add(-time.Hour)}
			e.putHeldImage(1, sampleImage("debian"))
			e.applyOK(2, PutTemplate, Put[store.Template]{Object: sampleTemplate("install"), Time: t0})
			e.applyOK(3, PutSubnet, Put[store.Subnet]{Object: sub, Time: t0})
			e.applyOK(4, PutMachine, Put[store.Machine]{Object: fixed, Time: t0})
			e.applyOK(5, PutLease, Put[store.Lease]{Object: held, Time: t0})
			e.applyOK(6, PutLease, Put[store.Lease]{Object: expired, Time: t0})
			var ids []string
			for i := range 4 {
				id := fmt.Sprintf("m%d", i+1)
				e.applyOK(uint64(7+i), PutMachine, Put[store.Machine]{Object: sampleMachine(id, fmt.Sprintf("aa:bb:cc:00:00:%02x", i+1)), Time: t0})
				ids = append(ids, id)
			}
			provision(t, e, typ, 11, ids...)
			var got []string
			for _, id := range ids {
				got = append(got, checkFreePoolAddress(t, e, id))
			}
			t.Logf("addresses given: %v", got)
			slices.Sort(got)
			if len(slices.Compact(got)) != len(ids) {
				t.Errorf("addresses %v: two machines got the same", got)
			}
		})
	}
}

// checkFreePoolAddress checks that machine id's boot interface reserves
// an address of a pool of its subnet that is not the gateway, not in a
// reserved range, reserved by no other machine, and leased by no other
// MAC at t0, and returns it.
func checkFreePoolAddress(t *testing.T, e *env, id string) string {
	t.Helper()
	m := machineOf(t, e, id)
	nic := m.Interfaces[bootInterface(m)]
	ip, err := netip.ParseAddr(nic.IP)
	if err != nil {
		t.Fatalf("machine %s reserves %q: %v", id, nic.IP, err)
	}
	e.view(func(tx *store.Tx) error {
		sub, err := store.Get[store.Subnet](tx, nic.Subnet)
		if err != nil {
			t.Fatalf("machine %s's subnet %q: %v", id, nic.Subnet, err)
		}
		in := func(rs []store.Range) bool {
			return slices.ContainsFunc(rs, func(r store.Range) bool { return inRange(ip, r) })
		}
		if !in(sub.Pools) {
			t.Errorf("machine %s got %s, outside the pools of %s", id, ip, sub.Name)
		}
		if in(sub.Reserved) {
			t.Errorf("machine %s got %s, in a reserved range of %s", id, ip, sub.Name)
		}
		if ip.String() == sub.Gateway {
			t.Errorf("machine %s got the gateway %s", id, ip)
		}
		rs, err := tx.Reservations()
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.IP == ip && r.MachineID != id {
				t.Errorf("machine %s got %s, which machine %s reserves", id, ip, r.MachineID)
			}
		}
		if l, err := store.Get[store.Lease](tx, ip.String()); err == nil && l.MAC != nic.MAC && l.Holds(t0) {
			t.Errorf("machine %s got %s, which %s holds until %s", id, ip, l.MAC, l.Expires)
		}
		return nil
	})
	return ip.String()
}
