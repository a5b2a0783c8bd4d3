package sim

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// Env is what simulated machines share: where they are, the relay their
// DHCP goes through, what they check the appliance's answers against,
// and counters. Set the exported fields, then call Provision for one
// machine or Storm for many; do not copy an Env once used.
type Env struct {
	// Netns is the namespace the machines' TFTP and HTTP clients run in;
	// the Relay listens there too.
	Netns *lab.Netns
	// Iface is Netns's interface to the appliance, on which each machine's
	// leased address is added for its HTTP requests; ClientIface if empty.
	Iface string
	// Relay carries the machines' DHCP.
	Relay *Relay
	// Server is the appliance's address on the boot network: the next
	// server every ACK must name, where TFTP and boot HTTP are fetched.
	Server netip.Addr
	// Servers are all the nodes of a site of several: an ACK may name
	// any of them as next server (whichever leads). Server alone if
	// empty.
	Servers []netip.Addr
	// BootPort is the port of the appliance's boot HTTP service.
	BootPort int
	// NetbootRetries is how many times a machine's firmware starts its
	// network boot over, from DHCP, when it failed before the installer
	// ran (no DHCP answer, a TFTP or HTTP fetch that failed for good), as
	// a server's BIOS that loops over its boot order does. 0 gives up at
	// the first failure.
	NetbootRetries int
	// Rediscover makes each machine's agent find the appliance again
	// through DHCP when it stops answering, as the installer's agent does
	// (agent.Config.Rediscover): see Agent.Rediscover.
	Rediscover bool
	// Damage, if set, says at each image download of machine m whether
	// its link damages it (see Agent.Damage).
	Damage func(m Machine) bool
	// Artifacts are what the appliance serves: the machines check the
	// sizes of what they fetch against them.
	Artifacts *Artifacts

	stats   Stats
	inPhase [PhaseDone]atomic.Int32
	done    atomic.Int32
	failed  atomic.Int32
}

// Phase is a part of a machine's walk (see Env.Provision).
type Phase int

// The phases of a machine's walk, in order, and PhaseDone.
const (
	PhaseDHCP  Phase = iota // DISCOVER to ACK
	PhaseTFTP               // the iPXE binary
	PhaseBoot               // the iPXE script, the kernel's and initrd's first bytes
	PhaseAgent              // the workflow, first GET to done
	// PhaseDone is after the walk: a check of its outcome failed (the
	// appliance's record of the machine, an address given twice).
	PhaseDone
	numPhases
)

var phaseNames = [numPhases]string{"dhcp", "tftp", "boot", "agent", "done"}

func (ph Phase) String() string {
	if ph < 0 || ph >= numPhases {
		return fmt.Sprintf("Phase(%d)", int(ph))
	}
	return phaseNames[ph]
}

// Result is one machine's walk.
type Result struct {
	ID     string                   // the machine's
	Err    error                    // nil: ok
	Phase  Phase                    // where Err happened
	Total  time.Duration            // from its first DHCP packet to the end of its walk
	Phases [PhaseDone]time.Duration // how long each phase of the walk it finished took
	Addr   string                   // the address its ACK gave, once its walk succeeded
}

// Stats counts what machines met along the way, by what happened:
// "retried <request>: <why>" and the like. It is safe for concurrent use;
// a nil *Stats counts nothing.
type Stats struct {
	mu     sync.Mutex
	counts map[string]int
}

func (s *Stats) count(what string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[what]++
}

// Counts returns a copy of the counts.
func (s *Stats) Counts() map[string]int {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// Stats is what the env's machines met so far.
func (e *Env) Stats() *Stats { return &e.stats }

// Progress is how far the env's machines are.
type Progress struct {
	InPhase [PhaseDone]int // machines in each phase of their walk now
	Done    int            // machines whose walk ended
	Failed  int            // of those, how many failed
}

// Progress returns how far the env's machines are now.
func (e *Env) Progress() Progress {
	var p Progress
	for ph := range PhaseDone {
		p.InPhase[ph] = int(e.inPhase[ph].Load())
	}
	p.Done, p.Failed = int(e.done.Load()), int(e.failed.Load())
	return p
}

// Outcome is a storm's: one Result per machine, in the order they were
// given.
type Outcome struct {
	Results []Result
	Wall    time.Duration // from the start of the storm to its last machine's end
	Par     int           // machines in flight at most
}

// Storm provisions machines, at most par at a time (a real storm is all
// of them at once), and returns their results once every walk has ended.
// A machine still waiting for its turn when ctx ends fails with ctx's
// error.
func (e *Env) Storm(ctx context.Context, machines []Machine, par int) *Outcome {
	out := &Outcome{Results: make([]Result, len(machines)), Par: par}
	start := time.Now()
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, m := range machines {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out.Results[i] = Result{ID: m.ID, Err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			out.Results[i] = e.Provision(ctx, m)
		})
	}
	wg.Wait()
	out.Wall = time.Since(start)
	return out
}

// OK counts the machines that succeeded.
func (o *Outcome) OK() int {
	n := 0
	for _, r := range o.Results {
		if r.Err == nil {
			n++
		}
	}
	return n
}

// CheckAddresses fails the machines whose ACK gave an address another
// machine's ACK gave too (it never should: the store refuses it), in
// PhaseDHCP.
func (o *Outcome) CheckAddresses() {
	holder := map[string]int{}
	for i := range o.Results {
		r := &o.Results[i]
		if r.Addr == "" {
			continue
		}
		if j, ok := holder[r.Addr]; ok {
			for _, k := range []int{i, j} {
				o.Results[k].Err = fmt.Errorf("address %s was given to both %s and %s", r.Addr, o.Results[j].ID, o.Results[i].ID)
				o.Results[k].Phase = PhaseDHCP
			}
			continue
		}
		holder[r.Addr] = i
	}
}

// Latency summarises durations by the nearest-rank method.
type Latency struct {
	N             int // how many durations
	P50, P99, Max time.Duration
}

// Latency is over every machine's total, ok or not (a failed machine's
// to when it gave up).
func (o *Outcome) Latency() Latency {
	d := make([]time.Duration, len(o.Results))
	for i, r := range o.Results {
		d[i] = r.Total
	}
	return latency(d)
}

// PhaseLatency is over the machines that finished phase ph.
func (o *Outcome) PhaseLatency(ph Phase) Latency {
	var d []time.Duration
	for _, r := range o.Results {
		if r.Phases[ph] > 0 {
			d = append(d, r.Phases[ph])
		}
	}
	return latency(d)
}

func latency(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	return Latency{N: len(d), P50: nearestRank(d, 0.50), P99: nearestRank(d, 0.99), Max: d[len(d)-1]}
}

// nearestRank is the p-quantile of sorted d by the nearest-rank method.
func nearestRank(d []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(d))+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}
