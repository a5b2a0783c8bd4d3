package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/soak"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/syncproto"
)

// putSoakSite stores the site's own objects through its API: the
// installer, the two OS images (the same file under two names), the
// VMs' images (more), and the install templates and the deprovision's
// wipe template.
func putSoakSite(ctx context.Context, s *soakSite, art *sim.Artifacts, more []store.Object) error {
	inst := art.Installer(stormInstaller)
	// The VMs boot it under software emulation on a loaded machine.
	inst.Cmdline += " " + lab.GuestKernelArgs
	objs := []store.Object{inst, labsite.InstallTemplate(), labsite.RebootTemplate(), labsite.WipeTemplate()}
	for _, name := range soakImages {
		objs = append(objs, art.OSImage(name))
	}
	objs = append(objs, more...)
	for _, o := range objs {
		if err := s.api.Put(ctx, o.Kind()+"s", o.Key(), o, nil); err != nil {
			return fmt.Errorf("put %s %s at the site: %w", o.Kind(), o.Key(), err)
		}
	}
	return nil
}

// registerSoakMachines puts each machine, with its BMC, at central for
// the site, and waits until the site has them all.
func registerSoakMachines(ctx context.Context, cen *soakCentral, site *soakSite, f *soakFleet) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, m := range f.list {
		g.Go(func() error {
			body := &syncproto.Machine{ID: m.ID, Hostname: m.ID, Arch: "x86_64",
				Interfaces: []syncproto.Interface{{Name: "eth0", MAC: m.MAC.String(), Boot: true}},
				BMC:        &syncproto.BMC{Address: m.bmc.Addr, Driver: "ipmi", Username: m.bmc.Username, Password: m.bmc.Password}}
			return cen.do(gctx, time.Minute, "PUT", "/v1/sites/"+soakSiteID+"/machines/"+m.ID, body, nil)
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("register the machines at central: %w", err)
	}
	return pollEvery(ctx, time.Second, 3*time.Minute, func() error {
		var ms []store.Machine
		if err := site.api.List(ctx, "machines", &ms); err != nil {
			return err
		}
		if len(ms) < len(f.list) {
			return fmt.Errorf("the site has %d of %d machines", len(ms), len(f.list))
		}
		return nil
	})
}

// soakLoop runs the orders and the faults from start for the
// schedule's duration, watching the invariants, then drains and checks
// them all.
func soakLoop(ctx context.Context, t lab.T, sched *soak.Schedule, start time.Time, cen *soakCentral, site *soakSite, fleet *soakFleet, chk *soak.Checker) (*soak.Report, error) {
	placing, stopPlacing := context.WithDeadline(ctx, start.Add(sched.Duration))
	defer stopPlacing()
	drain, stopDrain := context.WithDeadline(ctx, start.Add(sched.Duration+soakDrain))
	defer stopDrain()
	orders := &soakOrders{cen: cen, site: site, chk: chk, waiters: map[string]chan orderEnd{}}
	go orders.watch(drain)
	in := &soakInjector{t: t, start: start, cen: cen, site: site, fleet: fleet, bn: &sim.Net{Client: site.sw.client}, chk: chk}
	var bg sync.WaitGroup
	var injected []soak.Fault
	bg.Go(func() { injected = in.run(drain, sched) })
	watchCtx, stopWatch := context.WithCancel(drain)
	bg.Go(func() { soakWatch(watchCtx, start, cen, site, fleet, chk) })
	var wg sync.WaitGroup
	rnd := rand.New(rand.NewPCG(sched.Seed, 1))
	for _, m := range fleet.list {
		mr := rand.New(rand.NewPCG(rnd.Uint64(), rnd.Uint64()))
		wg.Go(func() { orders.run(drain, placing, m, mr) })
	}
	progress := soakProgress(placing, start, orders, fleet, chk)
	wg.Wait()
	progress()
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "soak: placing ended at %.0f s; every machine's last order ended at %.0f s\n",
		sched.Duration.Seconds(), elapsed.Seconds())
	stopWatch()
	bg.Wait()
	in.annotateUnposted(ctx)                    // soak_annotate.go
	soakCheckAnnotated(ctx, cen, injected, chk) // soak_annotate.go
	site.setWAN(lab.Pass)
	// The drain's deadline may have passed: the final checks have
	// their own.
	lost, dup, err := soakCheckEvents(ctx, cen, site, chk)
	if err != nil {
		chk.Violate(soak.InvLostEvent, "%v", err)
	}
	soakCheckEnd(ctx, cen, site, chk)
	// The faults as they happened: an order is judged, and a fault's
	// cost counted, by when it really ran.
	done := *sched
	done.Faults = injected
	charged := chk.CheckOrders(done.Faults)
	chk.CheckResources(60)
	rep := soak.NewReport(&done, elapsed, len(fleet.list), chk, charged)
	rep.LostEvents, rep.DupEvents = lost, dup
	rep.CountVMs(soakVMIDs(*soakVMs), int(orders.booted.Load()))
	in.mu.Lock()
	rep.Extra = map[string]any{"walks": fleet.walks.Load(), "walk_failures": fleet.walkFails.Load(),
		"acks": chk.ACKs(), "orders_placed": orders.placed.Load(), "fault_log": in.log}
	in.mu.Unlock()
	if len(rep.Violations) > 0 {
		fmt.Fprintf(os.Stderr, "soak: applianced's logs (last lines):\n%s%s", site.logTails(30), fleet.vmTails(20))
	}
	return rep, nil
}

// soakProgress prints, every 30 s until placing ends, how far the soak
// is; the returned function waits for its last line.
func soakProgress(placing context.Context, start time.Time, o *soakOrders, f *soakFleet, chk *soak.Checker) func() {
	var wg sync.WaitGroup
	wg.Go(func() {
		for sleepCtx(placing, 30*time.Second) == nil {
			ended, failed := 0, 0
			for _, ord := range chk.Orders() {
				if ord.State != "" {
					ended++
				}
				if ord.State == "failed" {
					failed++
				}
			}
			fmt.Fprintf(os.Stderr, "soak: %5.0f s: orders placed %d, ended %d (%d failed); walks %d (%d failed); VMs booted %d; violations %d\n",
				time.Since(start).Seconds(), o.placed.Load(), ended, failed, f.walks.Load(), f.walkFails.Load(), o.booted.Load(), len(chk.Violations()))
		}
	})
	return wg.Wait
}

// soakWatch samples the daemons and checks the lease table every 10 s
// until ctx ends; with -soak-inject-violation, it feeds the checker one
// ACK of a held address to another MAC.
func soakWatch(ctx context.Context, start time.Time, cen *soakCentral, site *soakSite, f *soakFleet, chk *soak.Checker) {
	injected := !*soakInject
	for sleepCtx(ctx, 10*time.Second) == nil {
		at := time.Since(start).Seconds()
		for _, nd := range site.nodes {
			if p, name := nd.process(); !p.exited() {
				s := procSample(p.cmd.Process.Pid, at, siteGoroutines(ctx, nd))
				s.Leads = siteNodeLeads(ctx, nd)
				chk.Sampled(name, s)
			}
		}
		for _, nd := range cen.nodes {
			cp, name := nd.process()
			if cp.Running() {
				s := procSample(cp.Pid(), at, centralGoroutines(ctx, nd))
				s.Leads = centralNodeLeads(ctx, nd)
				chk.Sampled(name, s)
			}
		}
		if leases, err := siteLeases(ctx, site); err == nil {
			chk.CheckLeases(leases)
		}
		if !injected {
			for _, m := range f.list {
				if addr, ok := chk.Held(m.MAC.String()); ok {
					fmt.Fprintf(os.Stderr, "soak: injecting a violation: %s ACKed to 02:ff:ff:ff:ff:ff while %s holds it\n", addr, m.MAC)
					chk.ACK("02:ff:ff:ff:ff:ff", addr)
					// Given back at once: the one violation is this ACK's.
					chk.Release("02:ff:ff:ff:ff:ff")
					injected = true
					break
				}
			}
		}
	}
}

// procSample reads a process's open descriptors and RSS from /proc.
func procSample(pid int, at float64, goroutines int) soak.Sample {
	s := soak.Sample{At: at, Goroutines: goroutines}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(fds)
	}
	if kb, err := rssKiB(pid); err == nil {
		s.RSSKiB = kb
	}
	return s
}

// siteNodeLeads is whether nd says it leads its site.
func siteNodeLeads(ctx context.Context, nd *soakSiteNode) bool {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := nd.api.Cluster(cctx)
	return err == nil && st.State == "Leader"
}

// centralNodeLeads is whether nd says it leads central.
func centralNodeLeads(ctx context.Context, nd *soakCentralNode) bool {
	var st struct {
		State string `json:"state"`
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return nd.api.do(cctx, "GET", "/v1/cluster", nil, &st) == nil && st.State == "Leader"
}

// rssKiB is a process's VmRSS.
func rssKiB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// goroutinesFrom reads go_goroutines from a Prometheus text page; -1 if
// it cannot.
func goroutinesFrom(ctx context.Context, hc *http.Client, url string) int {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, "GET", url, nil)
	res, err := hc.Do(req)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			if n, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				return int(n)
			}
		}
	}
	return -1
}

func siteGoroutines(ctx context.Context, nd *soakSiteNode) int {
	return goroutinesFrom(ctx, nd.http, "https://"+nd.addr+"/metrics")
}

func centralGoroutines(ctx context.Context, nd *soakCentralNode) int {
	return goroutinesFrom(ctx, nd.api.http, nd.api.url+"/metrics")
}

// siteLeases is the site's lease table, address → MAC.
func siteLeases(ctx context.Context, s *soakSite) (map[string]string, error) {
	var ls []store.Lease
	if err := s.api.List(ctx, "leases", &ls); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ls))
	for _, l := range ls {
		out[l.IP] = l.MAC
	}
	return out, nil
}

// soakCheckEvents waits until central has stored the site's last event,
// then compares the two: lost and duplicated events.
func soakCheckEvents(ctx context.Context, cen *soakCentral, site *soakSite, chk *soak.Checker) (lost, dup int, err error) {
	var last uint64
	err = pollEvery(ctx, 2*time.Second, soakDrain, func() error {
		_, l, err := site.api.Events(ctx, 0, 1)
		if err != nil {
			return err
		}
		last = l
		var st struct {
			Sync struct {
				StoredSeq uint64 `json:"stored_seq"`
			} `json:"sync"`
		}
		if err := cen.do(ctx, 30*time.Second, "GET", "/v1/sites/"+soakSiteID, nil, &st); err != nil {
			return err
		}
		if st.Sync.StoredSeq < last {
			return fmt.Errorf("central stored the site's events to %d of %d", st.Sync.StoredSeq, last)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("central did not catch up with the site's events: %w", err)
	}
	siteEvents, err := soakSiteEvents(ctx, site)
	if err != nil {
		return 0, 0, err
	}
	centralEvents, err := soakCentralEvents(ctx, cen)
	if err != nil {
		return 0, 0, err
	}
	lost, dup = chk.CheckEvents(siteEvents, centralEvents)
	fmt.Fprintf(os.Stderr, "soak: events: site %d (last %d), central %d: %d lost, %d duplicated\n",
		len(siteEvents), last, len(centralEvents), lost, dup)
	return lost, dup, nil
}

func eventBody(e store.Event) string {
	return e.Time.UTC().Format(time.RFC3339Nano) + " " + e.Message
}

func soakSiteEvents(ctx context.Context, s *soakSite) ([]soak.Event, error) {
	var out []soak.Event
	var since uint64
	for {
		batch, _, err := s.api.Events(ctx, since, 1000)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			return out, nil
		}
		for _, e := range batch {
			out = append(out, soak.Event{Seq: e.Seq, Kind: e.Kind, Body: eventBody(e)})
		}
		since = batch[len(batch)-1].Seq
	}
}

func soakCentralEvents(ctx context.Context, cen *soakCentral) ([]soak.Event, error) {
	var out []soak.Event
	var since uint64
	for {
		var page struct {
			Events []struct {
				Seq  uint64          `json:"seq"`
				Data json.RawMessage `json:"data"`
			} `json:"events"`
		}
		path := fmt.Sprintf("/v1/sites/%s/events?since=%d&limit=1000", soakSiteID, since)
		if err := cen.do(ctx, time.Minute, "GET", path, nil, &page); err != nil {
			return nil, err
		}
		if len(page.Events) == 0 {
			return out, nil
		}
		for _, e := range page.Events {
			var ev store.Event
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				return nil, fmt.Errorf("central's event %d: %w", e.Seq, err)
			}
			out = append(out, soak.Event{Seq: e.Seq, Kind: ev.Kind, Body: eventBody(ev)})
		}
		since = page.Events[len(page.Events)-1].Seq
	}
}

// soakCheckEnd checks, at the end, that every daemon still runs and
// that the addresses held agree with the lease table.
func soakCheckEnd(ctx context.Context, cen *soakCentral, site *soakSite, chk *soak.Checker) {
	for _, nd := range site.nodes {
		if p, name := nd.process(); p.exited() {
			chk.Violate("process_died", "%s exited on its own: %s", name, lastLines(p.log, 5))
		}
	}
	// The leader's view: a follower's may lag behind it.
	if _, err := site.leader(ctx); err != nil {
		chk.Violate("process_died", "the site: %v", err)
	}
	for _, nd := range cen.nodes {
		if p, name := nd.process(); !p.Running() {
			chk.Violate("process_died", "%s exited on its own: %v", name, p.Err())
		}
	}
	leases, err := siteLeases(ctx, site)
	if err != nil {
		chk.Violate(soak.InvLeaseTable, "read the lease table: %v", err)
	} else {
		chk.CheckLeases(leases)
	}
	soakCheckStates(ctx, cen, site, chk)
}

// soakCheckStates compares each machine's state at the site with the
// state central's fleet model derived from the site's events alone:
// they must agree, or the events do not explain the machine.
func soakCheckStates(ctx context.Context, cen *soakCentral, site *soakSite, chk *soak.Checker) {
	var ms []store.Machine
	if err := site.api.List(ctx, "machines", &ms); err != nil {
		chk.Violate(soak.InvMachineState, "list the site's machines: %v", err)
		return
	}
	for _, m := range ms {
		var fm struct {
			State string `json:"state"`
		}
		if err := cen.do(ctx, time.Minute, "GET", "/v1/fleet/machines/"+soakSiteID+"/"+m.ID, nil, &fm); err != nil {
			chk.Violate(soak.InvMachineState, "central's fleet has no %s: %v", m.ID, err)
			continue
		}
		if fm.State != string(m.State) {
			chk.Violate(soak.InvMachineState, "%s is %s at the site but %s by its events at central", m.ID, m.State, fm.State)
		}
	}
}
