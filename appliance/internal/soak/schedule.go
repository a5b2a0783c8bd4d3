package soak

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults a schedule injects.
const (
	// SiteKill SIGKILLs the site's applianced; it starts again at End.
	SiteKill Kind = "site.kill"
	// CentralKill SIGKILLs central's leader; it starts again at End.
	CentralKill Kind = "central.kill"
	// WANPartition refuses every connection of the site to central.
	WANPartition Kind = "wan.partition"
	// WANFlap cuts and heals the site's link to central every few
	// seconds.
	WANFlap Kind = "wan.flap"
	// BootLoss drops a share of the boot network's packets (nftables
	// numgen), and limits its rate (tbf).
	BootLoss Kind = "boot.loss"
	// BMCDead kills the BMC of Target; it starts again at End. An order
	// against Target may fail while it is dead, naming its power jobs.
	BMCDead Kind = "bmc.dead"
	// BMCTimeout hangs the BMC of Target (SIGSTOP: it keeps its state
	// but answers nothing) until End, when it goes on (SIGCONT). An
	// order against Target may fail while it hangs, naming its power
	// jobs.
	BMCTimeout Kind = "bmc.timeout"
	// BMCRefuse makes the BMC of Target refuse every packet (its port
	// answers ICMP port unreachable: its IPMI service is down, the BMC
	// up) until End. An order against Target may fail while it refuses,
	// naming its power jobs.
	BMCRefuse Kind = "bmc.refuse"
	// AgentKill kills the installer's agent of Target in the middle of
	// its image write; the machine boots again (as a panicking
	// installer's does).
	AgentKill Kind = "agent.kill"
	// ImageCorrupt damages one byte of Target's next image download on
	// its way in, before its agent hashes it: the agent must find it and
	// download the image again; the provision must not fail.
	ImageCorrupt Kind = "image.corrupt"
	// DiskFull fills the data filesystem of the site node that leads
	// (its own, small one) and frees it at End.
	DiskFull Kind = "disk.full"
	// ClockStep steps the wall clock of the site node that leads by
	// Step (through its lab clock file), and back at End.
	ClockStep Kind = "clock.step"
	// Upgrade replaces the site's nodes, one at a time, then central's,
	// with the current release's binaries: a fault-like band whose End is
	// when the last node has caught up. It is not in Kinds: a schedule
	// holds one only when asked (outpost-bench's -soak-upgrade-from).
	Upgrade Kind = "upgrade"
)

// VMKinds are the targeted kinds of fault a real VM (QEMU behind its
// ipmi_sim) lives through in a soak's time: its BMC hung or refusing
// (the VM runs on, its power jobs may fail) and its installer lost in
// the middle of a write (the VM resets, as a panicking installer's
// reboots). Not BMCDead: a dead ipmi_sim takes its VM's QEMU with it,
// a power loss mid-install that no order lives through; nor
// ImageCorrupt: a real VM's download goes over a real TCP connection
// the lab does not damage.
var VMKinds = []Kind{BMCTimeout, BMCRefuse, AgentKill}

// Kinds are every kind of fault, in the order a schedule cycles them.
var Kinds = []Kind{SiteKill, CentralKill, WANPartition, WANFlap, BootLoss, BMCDead, BMCTimeout, BMCRefuse, AgentKill,
	ImageCorrupt, DiskFull, ClockStep}

// perDay is how many faults of each kind a day holds: a schedule of an
// hour or more is a compressed day and holds them all, a shorter one
// fewer in proportion (dayFaults).
var perDay = map[Kind]int{
	SiteKill: 6, CentralKill: 6, WANPartition: 8, WANFlap: 8, BootLoss: 8, BMCDead: 12, BMCTimeout: 8, BMCRefuse: 8,
	AgentKill: 12, ImageCorrupt: 12, DiskFull: 4, ClockStep: 6,
	Upgrade: 1, // one per schedule, whatever its duration (NewSchedule)
}

// length is how long a fault of each kind lasts, in a compressed day:
// from its start to its End (a restart, a heal).
var length = map[Kind]time.Duration{
	SiteKill: 5 * time.Second, CentralKill: 5 * time.Second, WANPartition: 40 * time.Second,
	WANFlap: 30 * time.Second, BootLoss: 45 * time.Second, BMCDead: 60 * time.Second, BMCTimeout: 60 * time.Second,
	BMCRefuse: 60 * time.Second, AgentKill: 0, ImageCorrupt: 0, DiskFull: 30 * time.Second, ClockStep: 60 * time.Second,
	Upgrade: 3 * time.Minute, // room kept free of the exclusive faults: six restarts under load
}

// Fault is one fault of a schedule: its kind, when it starts and ends,
// counted from the soak's start, its target (a machine for the BMC
// faults, AgentKill and ImageCorrupt; "" for the others), and for
// ClockStep the step.
type Fault struct {
	Kind   Kind          `json:"kind"`
	Target string        `json:"target,omitempty"`
	Start  time.Duration `json:"start_ns"`
	End    time.Duration `json:"end_ns"`
	Step   time.Duration `json:"step_ns,omitempty"`
}

func (f Fault) String() string {
	s := fmt.Sprintf("%8.1fs–%8.1fs %-14s", f.Start.Seconds(), f.End.Seconds(), f.Kind)
	if f.Target != "" {
		s += " " + f.Target
	}
	if f.Step != 0 {
		s += " step " + f.Step.String()
	}
	return s
}

// clockSteps are the steps a ClockStep fault draws from: NTP's
// corrections of a clock that was minutes or hours off, and a day; the
// fault steps back by as much when it ends.
//
// Forward only, for now: a leader whose clock steps back dates the
// deadlines it writes in the past, and the next leader, or the same one
// once its clock is right again, times out at once the workflow action
// started meanwhile (soak-ci found it: a VM's wipe started on a leader
// 3 h behind, which was then killed, timed out 13 s later). The fix is
// a site time that never runs backward (the proposer dating commands
// no earlier than what the log has applied); until it is made, the
// soak would fail on it at every such step.
var clockSteps = []time.Duration{
	5 * time.Minute, time.Hour, 3 * time.Hour, 24 * time.Hour,
}

// drawSteps gives each ClockStep fault of s its step, from a generator
// of its own seeded by the schedule's, so that the other faults' draws
// are those of a schedule without steps.
func (s *Schedule) drawSteps() {
	r := rand.New(rand.NewPCG(s.Seed^0x636c6f636b, s.Seed))
	for i := range s.Faults {
		if s.Faults[i].Kind == ClockStep {
			s.Faults[i].Step = clockSteps[r.IntN(len(clockSteps))]
		}
	}
}

// Against says whether f targets machine during [from, to]: a fault
// that may make an order of machine fail.
func (f Fault) Against(machine string, from, to time.Duration) bool {
	return f.Target == machine && f.Start <= to && f.End >= from
}

// Schedule is a seeded fault schedule: the same seed, duration and
// machines give the same faults.
type Schedule struct {
	Seed     uint64        `json:"seed"`
	Duration time.Duration `json:"duration_ns"`
	Kinds    []Kind        `json:"kinds"`
	PerKind  int           `json:"per_kind"` // 0: a day's density
	Faults   []Fault       `json:"faults"`
}

// dayFaults is how many faults of kind k a schedule of d holds by
// default. The soak compresses a day into d: an hour or more holds a
// day's faults (perDay), at a day's density when d is 24 hours and
// packed tighter below; a shorter soak, too short to hold a day's
// exclusive faults apart, holds a share in proportion to an hour, and
// at least one of each kind.
func dayFaults(k Kind, d time.Duration) int {
	return max(1, int(float64(perDay[k])*min(1, d.Hours())+0.5))
}

// quiet is how much of a schedule's start and end have no fault: the
// first provisions run clean, and the last faults heal before the end.
const quiet = 0.1

// NewSchedule packs a day's faults (perDay, dayFaults) of kinds (nil:
// Kinds) into d (faults is 0), or exactly faults of each kind, at seeded
// random times within the middle of d (quiet at either end), with
// targets chosen from machines, and from vms too for the VMKinds (no
// vms: the schedule of the machines alone). An Upgrade in kinds is one,
// first, as the quiet start ends; every other fault comes after it.
// Faults of the process kinds (SiteKill, CentralKill), of the WAN, of
// disks and the Upgrade never overlap one another, so that what each
// cost can be told apart.
func NewSchedule(seed uint64, d time.Duration, machines, vms []string, kinds []Kind, faults int) (*Schedule, error) {
	if d < time.Minute {
		return nil, fmt.Errorf("soak: duration %v is under a minute", d)
	}
	if len(machines) == 0 {
		return nil, fmt.Errorf("soak: no machines to target")
	}
	if kinds == nil {
		kinds = Kinds
	}
	for _, k := range kinds {
		if _, ok := perDay[k]; !ok {
			return nil, fmt.Errorf("soak: no fault kind %q (have %v)", k, Kinds)
		}
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &Schedule{Seed: seed, Duration: d, Kinds: kinds, PerKind: faults}
	lo, hi := time.Duration(float64(d)*quiet), time.Duration(float64(d)*(1-quiet))
	var exclusive []Fault // the faults that must not overlap
	if slices.Contains(kinds, Upgrade) {
		// The upgrade comes first, and every other fault after it: the
		// soak tests this release, and the previous one lacks fixes
		// that its faults need (a full disk panicked its nodes; its
		// agent API refuses a lost attempt's report).
		span := min(length[Upgrade], (hi-lo)/4)
		up := Fault{Kind: Upgrade, Start: lo, End: lo + span}
		s.Faults, exclusive = append(s.Faults, up), append(exclusive, up)
		lo = up.End + 10*time.Second
	}
	for _, k := range kinds {
		n := faults
		if n == 0 {
			n = dayFaults(k, d)
		}
		if k == Upgrade {
			continue
		}
		for range n {
			f := Fault{Kind: k}
			span := min(length[k], (hi-lo)/4)
			for try := 0; ; try++ {
				f.Start = lo + time.Duration(r.Int64N(int64(hi-lo-span)))
				f.End = f.Start + span
				if !k.exclusive() || try > 50 || !overlaps(exclusive, f) {
					break
				}
			}
			if k.exclusive() {
				exclusive = append(exclusive, f)
			}
			if k.targeted() {
				pool := targets(k, machines, vms)
				f.Target = pool[r.IntN(len(pool))]
			}
			s.Faults = append(s.Faults, f)
		}
	}
	slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.Start - b.Start) })
	s.drawSteps()
	return s, nil
}

// targets are the machines a fault of kind k may be against: machines,
// and vms if a VM lives through k.
func targets(k Kind, machines, vms []string) []string {
	if len(vms) == 0 || !slices.Contains(VMKinds, k) {
		return machines
	}
	return append(slices.Clip(machines), vms...)
}

// targeted says whether a fault of kind k is against one machine.
func (k Kind) targeted() bool {
	switch k {
	case BMCDead, BMCTimeout, BMCRefuse, AgentKill, ImageCorrupt:
		return true
	}
	return false
}

func (k Kind) exclusive() bool {
	return k == SiteKill || k == CentralKill || k == WANPartition || k == WANFlap || k == Upgrade || k == DiskFull
}

// overlaps says whether f overlaps one of fs, with 10 s to spare
// between them.
func overlaps(fs []Fault, f Fault) bool {
	const gap = 10 * time.Second
	for _, g := range fs {
		if f.Start <= g.End+gap && g.Start <= f.End+gap {
			return true
		}
	}
	return false
}

// Print writes the schedule, one fault a line, with the flags that
// replay it (outpost-bench's; the machines too must be as many).
func (s *Schedule) Print(w io.Writer) {
	kinds := make([]string, len(s.Kinds))
	for i, k := range s.Kinds {
		kinds[i] = string(k)
	}
	fmt.Fprintf(w, "soak: schedule seed=%d duration=%v faults=%d (replay with -soak-seed %d -soak-duration %v -soak-faults %s -soak-faults-per-kind %d)\n",
		s.Seed, s.Duration, len(s.Faults), s.Seed, s.Duration, strings.Join(kinds, ","), s.PerKind)
	for _, f := range s.Faults {
		fmt.Fprintf(w, "soak:   %s\n", f)
	}
}
