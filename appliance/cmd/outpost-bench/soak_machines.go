package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/soak"
)

// The soak's mix of images and templates: each provision picks one of
// each (the images are the same bytes under two names, as two releases
// of an OS built alike would be).
var (
	soakImages    = []string{"soak-os-a", "soak-os-b"}
	soakTemplates = []string{"install-testos", "install-testos-reboot"}
)

// soakMachine is a simulated machine behind a real BMC (ipmi_sim): when
// the BMC powers it on, it network-boots (a sim walk), as a server does;
// or a real VM (vm set), which its BMC starts and stops.
type soakMachine struct {
	sim.Machine
	bmc *lab.IPMISim
	vm  *soakVM

	mu        sync.Mutex
	cancel    context.CancelFunc // the walk running, if any
	gen       int                // counts walks begun
	walkStart time.Time          // of the walk running
	order     string             // the order open, if any
	killAgent bool               // the next kill is a fault's
	// damage: the link damages the machine's next image download
	// (ImageCorrupt), taken by that download.
	damage atomic.Bool
}

// soakFleet is the soak's machines: their BMCs' power-on lines come in
// through a FIFO, each starting the machine's walk.
type soakFleet struct {
	env      *sim.Env
	chk      *soak.Checker
	bmcNetns *lab.Netns // where the BMCs answer
	list     []*soakMachine
	byID     map[string]*soakMachine
	fifo     *os.File

	walks, walkFails atomic.Int64
	wg               sync.WaitGroup
}

// startSoakFleet starts n machines' BMCs (ipmi_sim in ns at bmcAddr,
// each running a command on power on that writes the machine's id to a
// FIFO) and reads the FIFO, until ctx ends, booting each machine named.
func startSoakFleet(ctx context.Context, t lab.T, ns *lab.Netns, bmcAddr string, env *sim.Env, chk *soak.Checker, dir string, n int) (*soakFleet, error) {
	path := filepath.Join(dir, "boots.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	// Read and write: the FIFO never reads end-of-file while no BMC has
	// it open.
	fifo, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { fifo.Close() })
	f := &soakFleet{env: env, chk: chk, bmcNetns: ns, byID: map[string]*soakMachine{}, fifo: fifo}
	env.Damage = f.damaged
	for i, m := range sim.Machines(n) {
		m.ID = fmt.Sprintf("soak-%04d", i)
		bmc := lab.StartIPMISim(t, lab.IPMISimConfig{Name: m.ID, Netns: ns, Addr: bmcAddr,
			StartCmd: fmt.Sprintf("echo %s >> %s; exec sleep 1000000", m.ID, path)})
		sm := &soakMachine{Machine: m, bmc: bmc}
		f.list = append(f.list, sm)
		f.byID[m.ID] = sm
	}
	go f.readBoots(ctx)
	return f, nil
}

// damaged says whether the link damages this image download of m: once
// for each ImageCorrupt armed against it.
func (f *soakFleet) damaged(m sim.Machine) bool {
	sm := f.byID[m.ID]
	return sm != nil && sm.damage.CompareAndSwap(true, false)
}

// readBoots boots each machine whose id comes through the FIFO.
func (f *soakFleet) readBoots(ctx context.Context) {
	sc := bufio.NewScanner(f.fifo)
	for sc.Scan() {
		if m := f.byID[strings.TrimSpace(sc.Text())]; m != nil && ctx.Err() == nil {
			f.boot(ctx, m)
		}
	}
}

// boot starts m's walk, ending the one it was on (a machine powered
// on again starts from its firmware).
func (f *soakFleet) boot(ctx context.Context, m *soakMachine) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
	}
	wctx, cancel := context.WithCancel(ctx)
	m.cancel, m.walkStart = cancel, time.Now()
	m.gen++
	gen := m.gen
	f.wg.Go(func() { f.walk(wctx, m, gen) })
}

// soakWalkTries bounds the walks one power-on makes: a machine whose
// walk failed (its DHCP lost, the site down) boots again after
// soakWalkPause, as a server's firmware retries, while its order is
// open.
const (
	soakWalkTries = 8
	soakWalkPause = 5 * time.Second
)

// walk runs m's network boot and workflow; a machine whose installer
// was killed (AgentKill) boots again, as a panicking installer's does.
func (f *soakFleet) walk(ctx context.Context, m *soakMachine, gen int) {
	for try := 1; try <= soakWalkTries; try++ {
		f.walks.Add(1)
		r := f.env.Provision(ctx, m.Machine)
		if r.Err == nil {
			f.chk.ACK(m.MAC.String(), r.Addr)
			break
		}
		m.mu.Lock()
		killed, open := m.killAgent && m.gen == gen, m.order != ""
		m.killAgent = false
		m.mu.Unlock()
		if ctx.Err() != nil && !killed {
			return // powered off, or on again (a newer walk)
		}
		f.walkFails.Add(1)
		if !killed {
			fmt.Fprintf(os.Stderr, "soak: %s: walk %d failed in %s: %v\n", m.ID, try, r.Phase, r.Err)
		}
		if !open {
			break
		}
		if killed {
			// A new walk of its own, on the fleet's context.
			return
		}
		if sleepCtx(ctx, soakWalkPause) != nil {
			return
		}
	}
	m.mu.Lock()
	if m.gen == gen {
		m.cancel = nil
	}
	m.mu.Unlock()
}

// killWalk kills m's walk if it has run for at least after (past its
// DHCP and boot, in its workflow: its image write), and boots it again
// after a pause; it says whether it killed one.
func (f *soakFleet) killWalk(ctx context.Context, m *soakMachine, after time.Duration) bool {
	m.mu.Lock()
	if m.cancel == nil || time.Since(m.walkStart) < after {
		m.mu.Unlock()
		return false
	}
	m.killAgent = true
	m.cancel()
	m.cancel = nil
	m.mu.Unlock()
	time.AfterFunc(2*time.Second, func() { f.boot(ctx, m) })
	return true
}

// setOrder records m's open order ("" once it ended).
func (m *soakMachine) setOrder(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.order = id
}

// soakOrders places orders at central and follows their end through
// the site's events.
type soakOrders struct {
	cen  *soakCentral
	site *soakSite
	chk  *soak.Checker

	mu      sync.Mutex
	waiters map[string]chan orderEnd
	cursor  uint64
	placed  atomic.Int64
	// booted counts the VMs' provisions whose test OS read its
	// metadata.
	booted atomic.Int64
}

// orderEnd is how an order ended: succeeded, failed or refused (by
// the site, when central's revision reached it).
type orderEnd struct{ state, reason string }

// expect registers a waiter for order id's end, before it is placed.
func (o *soakOrders) expect(id string) chan orderEnd {
	ch := make(chan orderEnd, 1)
	o.mu.Lock()
	o.waiters[id] = ch
	o.mu.Unlock()
	return ch
}

// watch polls the site's events every 2 s (on from the last seen),
// ending each order whose end they record, until ctx ends.
func (o *soakOrders) watch(ctx context.Context) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		events, _, err := o.site.api.Events(cctx, o.cursor, 1000)
		cancel()
		for _, e := range events {
			o.cursor = e.Seq
			var end orderEnd
			switch e.Kind {
			case "order.succeeded":
				end = orderEnd{state: "succeeded"}
			case "order.failed":
				_, reason, _ := strings.Cut(e.Message, " failed: ")
				end = orderEnd{state: "failed", reason: reason}
			case "sync.order_refused":
				end = orderEnd{state: "failed", reason: "refused: " + e.Fields["reason"]}
			default:
				continue
			}
			o.mu.Lock()
			ch := o.waiters[e.Fields["order"]]
			delete(o.waiters, e.Fields["order"])
			o.mu.Unlock()
			if ch != nil {
				ch <- end
			}
		}
		if err != nil || len(events) < 1000 {
			sleepCtx(ctx, 2*time.Second)
		}
	}
}

// run loops machine m through provision and deprovision orders until
// placing ends, then returns once its last order ended (or ctx ended).
// A VM's provision names the order as its hostname, and its deprovision
// waits for the test OS to say it has it (vmBooted).
func (o *soakOrders) run(ctx, placing context.Context, m *soakMachine, rnd *rand.Rand) {
	images := soakImages
	if m.vm != nil {
		images = soakVMImages
	}
	for n := 1; placing.Err() == nil; n++ {
		id := fmt.Sprintf("%s-p%d", m.ID, n)
		img, tmpl := images[rnd.IntN(len(images))], soakTemplates[rnd.IntN(len(soakTemplates))]
		hostname := m.ID
		if m.vm != nil {
			hostname = id
		}
		prov := map[string]any{"action": "provision", "machine_id": m.ID, "template": tmpl, "image": img,
			"values": map[string]string{"hostname": hostname}}
		if end, ok := o.one(ctx, m, id, prov); !ok {
			return
		} else if end.state == "failed" {
			fmt.Fprintf(os.Stderr, "soak: %s: provision failed: %s\n", m.ID, end.reason)
		} else if m.vm != nil {
			o.vmBooted(ctx, m, id, hostname)
		}
		deprov := map[string]any{"action": "deprovision", "machine_id": m.ID}
		end, ok := o.one(ctx, m, fmt.Sprintf("%s-d%d", m.ID, n), deprov)
		if !ok {
			return
		}
		if end.state == "succeeded" {
			o.chk.Release(m.MAC.String())
		}
		if sleepCtx(placing, time.Duration(rnd.IntN(10_000))*time.Millisecond) != nil {
			return
		}
	}
}

// vmBooted waits for the test OS that VM m's provision (order id)
// wrote to say it read its metadata: a violation if it does not.
func (o *soakOrders) vmBooted(ctx context.Context, m *soakMachine, id, hostname string) {
	err := m.vm.waitBooted(ctx, hostname, m.ID)
	switch {
	case err == nil:
		o.booted.Add(1)
		fmt.Fprintf(os.Stderr, "soak: %s: the test OS of %s read its metadata\n", m.ID, id)
	case ctx.Err() == nil:
		o.chk.Violate(soak.InvVMBoot, "%s: order %s succeeded, but: %v", m.ID, id, err)
	}
}

// one places order id (body) for m and waits for its end; false if
// ctx ended first or it could not be placed.
func (o *soakOrders) one(ctx context.Context, m *soakMachine, id string, body map[string]any) (orderEnd, bool) {
	ch := o.expect(id)
	if err := o.cen.do(ctx, 5*time.Minute, "PUT", "/v1/sites/"+soakSiteID+"/orders/"+id, body, nil); err != nil {
		if ctx.Err() == nil {
			o.chk.Violate("order_not_placed", "central did not take order %s in 5 minutes: %v", id, err)
		}
		return orderEnd{}, false
	}
	o.placed.Add(1)
	o.chk.Placed(id, m.ID, body["action"].(string))
	m.setOrder(id)
	defer m.setOrder("")
	select {
	case end := <-ch:
		o.chk.Ended(id, end.state, end.reason)
		return end, true
	case <-ctx.Done():
		return orderEnd{}, false
	}
}
