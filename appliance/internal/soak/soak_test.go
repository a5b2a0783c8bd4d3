package soak

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScheduleSeeded(t *testing.T) {
	ms := []string{"m1", "m2", "m3"}
	a, err := NewSchedule(7, time.Hour, ms, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSchedule(7, time.Hour, ms, nil, nil, 0)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, other schedule (-a +b):\n%s", diff)
	}
	c, _ := NewSchedule(8, time.Hour, ms, nil, nil, 0)
	if cmp.Equal(a.Faults, c.Faults) {
		t.Fatal("seeds 7 and 8 gave the same schedule")
	}
	kinds := map[Kind]int{}
	var excl []Fault
	for _, f := range a.Faults {
		kinds[f.Kind]++
		if f.Start < 6*time.Minute || f.End > 54*time.Minute {
			t.Errorf("%s is in the quiet start or end", f)
		}
		if f.Kind.targeted() != (f.Target != "") {
			t.Errorf("%s: target %q", f, f.Target)
		}
		if f.Kind.exclusive() {
			if overlaps(excl, f) {
				t.Errorf("%s overlaps another process or WAN fault", f)
			}
			excl = append(excl, f)
		}
	}
	for _, k := range Kinds {
		if kinds[k] != perDay[k] {
			t.Errorf("%d %s faults in an hour, want a day's, %d", kinds[k], k, perDay[k])
		}
	}
	var out strings.Builder
	a.Print(&out)
	if !strings.Contains(out.String(), "-soak-seed 7") {
		t.Errorf("the printed schedule does not say how to replay it:\n%s", out.String())
	}
}

// An upgrade comes first, as the quiet start ends, and every other
// fault after it.
func TestScheduleUpgradeFirst(t *testing.T) {
	s, err := NewSchedule(9, time.Hour, []string{"m1", "m2"}, nil, append([]Kind{Upgrade}, Kinds...), 0)
	if err != nil {
		t.Fatal(err)
	}
	up := s.Faults[0]
	if up.Kind != Upgrade || up.Start != 6*time.Minute {
		t.Fatalf("first fault %s, want the upgrade at 6m0s", up)
	}
	for _, f := range s.Faults[1:] {
		if f.Kind == Upgrade || f.Start <= up.End {
			t.Errorf("%s is not after the upgrade (%s)", f, up)
		}
	}
}

// A soak shorter than an hour holds a share of a day's faults, at
// least one of each kind.
func TestDayFaults(t *testing.T) {
	for _, c := range []struct {
		k    Kind
		d    time.Duration
		want int
	}{
		{BMCDead, 24 * time.Hour, 12},
		{BMCDead, time.Hour, 12},
		{BMCDead, 30 * time.Minute, 6},
		{BMCDead, 10 * time.Minute, 2},
		{DiskFull, 10 * time.Minute, 1},
		{DiskFull, time.Minute, 1},
	} {
		if got := dayFaults(c.k, c.d); got != c.want {
			t.Errorf("dayFaults(%s, %v) = %d, want %d", c.k, c.d, got, c.want)
		}
	}
}

func TestScheduleRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		d     time.Duration
		ms    []string
		kinds []Kind
	}{
		"too short":   {30 * time.Second, []string{"m"}, nil},
		"no machines": {time.Hour, nil, nil},
		"no kind":     {time.Hour, []string{"m"}, []Kind{"disk.melt"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewSchedule(1, tc.d, tc.ms, nil, tc.kinds, 0); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// clock is a settable soak clock.
type clock struct{ now time.Duration }

func (c *clock) Now() time.Duration { return c.now }

func TestAddresses(t *testing.T) {
	for name, tc := range map[string]struct {
		run  func(c *Checker)
		want []string
	}{
		"distinct":          {func(c *Checker) { c.ACK("a", "1"); c.ACK("b", "2") }, nil},
		"twice to one":      {func(c *Checker) { c.ACK("a", "1"); c.ACK("a", "1") }, nil},
		"two MACs":          {func(c *Checker) { c.ACK("a", "1"); c.ACK("b", "1") }, []string{InvDupAddress}},
		"released first":    {func(c *Checker) { c.ACK("a", "1"); c.Release("a"); c.ACK("b", "1") }, nil},
		"moved first":       {func(c *Checker) { c.ACK("a", "1"); c.ACK("a", "2"); c.ACK("b", "1") }, nil},
		"lease agrees":      {func(c *Checker) { c.ACK("a", "1"); c.CheckLeases(map[string]string{"1": "A"}) }, nil},
		"lease to another":  {func(c *Checker) { c.ACK("a", "1"); c.CheckLeases(map[string]string{"1": "b"}) }, []string{InvLeaseTable}},
		"released no check": {func(c *Checker) { c.ACK("a", "1"); c.Release("a"); c.CheckLeases(map[string]string{"1": "b"}) }, nil},
	} {
		t.Run(name, func(t *testing.T) {
			c := NewChecker((&clock{}).Now)
			tc.run(c)
			var got []string
			for _, v := range c.Violations() {
				got = append(got, v.Invariant)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	ev := func(seqs ...uint64) []Event {
		var out []Event
		for _, s := range seqs {
			out = append(out, Event{Seq: s, Kind: "k", Body: "b"})
		}
		return out
	}
	for name, tc := range map[string]struct {
		site, central []Event
		lost, dup     int
	}{
		"same":          {ev(1, 2, 3), ev(1, 2, 3), 0, 0},
		"site pruned":   {ev(3), ev(1, 2, 3), 0, 0},
		"gap":           {ev(1, 2, 3, 4), ev(1, 4), 2, 0},
		"tail missing":  {ev(1, 2, 3), ev(1), 2, 0},
		"twice":         {ev(1, 2), ev(1, 2, 2), 0, 1},
		"other content": {ev(1, 2), append(ev(1), Event{Seq: 2, Kind: "k", Body: "other"}), 0, 1},
	} {
		t.Run(name, func(t *testing.T) {
			c := NewChecker((&clock{}).Now)
			lost, dup := c.CheckEvents(tc.site, tc.central)
			if lost != tc.lost || dup != tc.dup {
				t.Fatalf("lost %d dup %d, want %d %d; %v", lost, dup, tc.lost, tc.dup, c.Violations())
			}
			if (lost+dup > 0) != (len(c.Violations()) > 0) {
				t.Fatalf("violations %v for lost %d dup %d", c.Violations(), lost, dup)
			}
		})
	}
}

// TestOrders: an order may fail only under a BMC fault (dead, hung or
// refusing) against its machine, for a BMC job's reason; a damaged image
// or a killed agent explains no failure.
func TestOrders(t *testing.T) {
	for name, tc := range map[string]struct {
		kind                   Kind
		machine, state, reason string
		want                   []string
		charged                bool
	}{
		"succeeded":              {BMCDead, "m1", "succeeded", "", nil, false},
		"open":                   {BMCDead, "m1", "", "", []string{InvOrderOpen}, false},
		"failed under fault":     {BMCDead, "m1", "failed", "power_cycle failed: timeout", nil, true},
		"a hung BMC":             {BMCTimeout, "m1", "failed", "power_on failed: bmc x: power on: unreachable", nil, true},
		"a refusing BMC":         {BMCRefuse, "m1", "failed", "boot_pxe failed: bmc x: set boot device: unreachable", nil, true},
		"other machine":          {BMCDead, "m2", "failed", "power_cycle failed: timeout", []string{InvOrderFailed}, false},
		"other reason":           {BMCDead, "m1", "failed", "workflow w failed: write", []string{InvOrderFailed}, false},
		"a damaged image":        {ImageCorrupt, "m1", "failed", "workflow w failed: action write failed: sha256 mismatch", []string{InvOrderFailed}, false},
		"a killed agent":         {AgentKill, "m1", "failed", "workflow w failed: action wipe failed: lost", []string{InvOrderFailed}, false},
		"a BMC job under a kill": {AgentKill, "m1", "failed", "power_cycle failed: timeout", []string{InvOrderFailed}, false},
	} {
		t.Run(name, func(t *testing.T) {
			dead := Fault{Kind: tc.kind, Target: "m1", Start: 10 * time.Second, End: 20 * time.Second}
			clk := &clock{now: 5 * time.Second}
			c := NewChecker(clk.Now)
			c.Placed("o1", tc.machine, "provision")
			clk.now = 15 * time.Second
			if tc.state != "" {
				c.Ended("o1", tc.state, tc.reason)
			}
			charged := c.CheckOrders([]Fault{dead})
			var got []string
			for _, v := range c.Violations() {
				got = append(got, v.Invariant)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("violations (-want +got):\n%s", diff)
			}
			if _, ok := charged["o1"]; ok != tc.charged {
				t.Fatalf("charged %v, want %v", charged, tc.charged)
			}
		})
	}
}

func TestResources(t *testing.T) {
	c := NewChecker((&clock{}).Now)
	c.Sampled("steady", Sample{At: 10, FDs: 40, RSSKiB: 1000, Goroutines: 100})
	c.Sampled("steady", Sample{At: 100, FDs: 45, RSSKiB: 2000, Goroutines: 120})
	c.Sampled("leaky", Sample{At: 10, FDs: 40, Goroutines: -1})
	c.Sampled("leaky", Sample{At: 100, FDs: 400, Goroutines: -1})
	c.Sampled("short", Sample{At: 10, FDs: 40, Goroutines: 1})
	c.Sampled("short", Sample{At: 20, FDs: 400, Goroutines: 1})
	c.Sampled("fat", Sample{At: 10, RSSKiB: 2 << 20})
	// Elected halfway: its clients' connections are not a leak, growth
	// as a leader is.
	c.Sampled("elected", Sample{At: 10, FDs: 20, Goroutines: 100})
	c.Sampled("elected", Sample{At: 50, FDs: 90, Goroutines: 300, Leads: true})
	c.Sampled("elected", Sample{At: 100, FDs: 95, Goroutines: 310, Leads: true})
	c.Sampled("leaky-leader", Sample{At: 10, FDs: 20, Goroutines: 100})
	c.Sampled("leaky-leader", Sample{At: 50, FDs: 90, Goroutines: 300, Leads: true})
	c.Sampled("leaky-leader", Sample{At: 100, FDs: 190, Goroutines: 310, Leads: true})
	c.CheckResources(5)
	vs := c.Violations()
	var got []string
	for _, v := range vs {
		got = append(got, strings.Fields(v.Detail)[0])
	}
	slices.Sort(got)
	if want := []string{"fat:", "leaky-leader:", "leaky:"}; !slices.Equal(got, want) {
		t.Fatalf("violations %v, want fat's RSS, leaky's and leaky-leader's descriptors", vs)
	}
}

func TestReport(t *testing.T) {
	clk := &clock{}
	c := NewChecker(clk.Now)
	s, err := NewSchedule(3, 2*time.Minute, []string{"m1"}, nil, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range []time.Duration{10, 20, 30} {
		clk.now = time.Duration(i) * 30 * time.Second
		c.Placed(string(rune('a'+i)), "m1", "provision")
		clk.now += d * time.Second
		c.Ended(string(rune('a'+i)), "succeeded", "")
	}
	c.Placed("z", "m1", "deprovision")
	c.Ended("z", "succeeded", "")
	r := NewReport(s, 2*time.Minute, 1, c, c.CheckOrders(s.Faults))
	want := fmt.Sprintf("BENCH soak hours=0.033 provisions=3 failed=0 success_ratio=1.000 dup_ips=0 lost_events=0 dup_events=0 p99_s=30.0 faults=%d vms=0 vm_provisions=0 vm_failed=0 vm_booted=0", len(Kinds))
	if got := r.BenchLine(); got != want {
		t.Fatalf("BENCH line\n got %s\nwant %s", got, want)
	}
	if r.TTP.P50 != 20 || r.PerHour != 90 {
		t.Fatalf("p50 %v per hour %v, want 20 and 90", r.TTP.P50, r.PerHour)
	}
	dir := t.TempDir()
	_, svg, err := r.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal([]byte(r.SVG()), new(struct{})); err != nil {
		t.Fatalf("%s is not well-formed XML: %v", svg, err)
	}
	for _, want := range []string{"all invariants held", string(BMCDead), "p99 30 s"} {
		if !strings.Contains(r.SVG(), want) {
			t.Errorf("the picture does not say %q", want)
		}
	}
}

func TestReportListsViolationsBounded(t *testing.T) {
	c := NewChecker((&clock{}).Now)
	for i := range 30 {
		c.Violate(InvOrderOpen, "order %d %s", i, strings.Repeat("x", 300))
	}
	s, err := NewSchedule(3, 2*time.Minute, []string{"m1"}, nil, []Kind{SiteKill}, 1)
	if err != nil {
		t.Fatal(err)
	}
	svg := NewReport(s, time.Minute, 1, c, nil).SVG()
	for _, want := range []string{"30 invariant violations", "and 10 more violations", "order 19 x"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the picture does not say %q", want)
		}
	}
	if strings.Contains(svg, "order 20 x") || strings.Contains(svg, strings.Repeat("x", 200)) {
		t.Error("the picture lists more than 20 violations, or one unclipped")
	}
}

// TestClockSteps checks that every clock step of a schedule has a step
// from clockSteps, the same for the same seed, and that the steps'
// draws leave the other faults where a schedule without steps has them.
func TestClockSteps(t *testing.T) {
	a, err := NewSchedule(11, time.Hour, []string{"m1", "m2"}, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSchedule(11, time.Hour, []string{"m1", "m2"}, nil, nil, 0)
	steps := 0
	for i, f := range a.Faults {
		if f.Kind != ClockStep {
			if f.Step != 0 {
				t.Errorf("%s has a step", f)
			}
			continue
		}
		steps++
		if !slices.Contains(clockSteps, f.Step) {
			t.Errorf("%s: step not one of %v", f, clockSteps)
		}
		if b.Faults[i].Step != f.Step {
			t.Errorf("the same seed stepped %v, then %v", f.Step, b.Faults[i].Step)
		}
		if !strings.Contains(f.String(), "step "+f.Step.String()) {
			t.Errorf("%q does not print its step", f)
		}
	}
	if steps == 0 {
		t.Fatal("no clock step in an hour")
	}
	without := slices.DeleteFunc(slices.Clone(Kinds), func(k Kind) bool { return k == ClockStep })
	c, _ := NewSchedule(11, time.Hour, []string{"m1", "m2"}, nil, without, 0)
	var others []Fault
	for _, f := range a.Faults {
		if f.Kind != ClockStep {
			others = append(others, f)
		}
	}
	if !slices.Equal(others, c.Faults) {
		t.Errorf("clock steps moved the other faults")
	}
}

// TestScheduleVMTargets checks that a schedule's faults hit the VMs only
// of the VMKinds, that they do hit them, and that without VMs the
// schedule is that of the machines alone.
func TestScheduleVMTargets(t *testing.T) {
	ms, vms := []string{"m1", "m2"}, []string{"vm1", "vm2"}
	s, err := NewSchedule(5, time.Hour, ms, vms, nil, 40)
	if err != nil {
		t.Fatal(err)
	}
	hit := map[Kind]bool{}
	for _, f := range s.Faults {
		if !slices.Contains(vms, f.Target) {
			continue
		}
		if !slices.Contains(VMKinds, f.Kind) {
			t.Errorf("%s hits a VM", f)
		}
		hit[f.Kind] = true
	}
	for _, k := range VMKinds {
		if !hit[k] {
			t.Errorf("no %s of 40 hit a VM", k)
		}
	}
	if len(ms) != 2 {
		t.Errorf("the machines' slice grew to %v", ms)
	}
	a, _ := NewSchedule(5, time.Hour, ms, nil, nil, 0)
	b, _ := NewSchedule(5, time.Hour, ms, []string{}, nil, 0)
	if !slices.Equal(a.Faults, b.Faults) {
		t.Error("an empty list of VMs changed the schedule")
	}
}

// TestReportCountsVMs checks that the VMs' provisions are counted apart,
// and in the totals too.
func TestReportCountsVMs(t *testing.T) {
	clk := &clock{}
	c := NewChecker(clk.Now)
	s, err := NewSchedule(3, 2*time.Minute, []string{"m1"}, []string{"vm1"}, []Kind{SiteKill}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct{ id, machine, action, state string }{
		{"a", "m1", "provision", "succeeded"}, {"b", "vm1", "provision", "succeeded"},
		{"c", "vm1", "provision", "failed"}, {"d", "vm1", "deprovision", "succeeded"}, {"e", "vm1", "provision", ""},
	} {
		c.Placed(o.id, o.machine, o.action)
		clk.now += time.Second
		if o.state != "" {
			c.Ended(o.id, o.state, "power_cycle failed: x")
		}
	}
	r := NewReport(s, 2*time.Minute, 2, c, nil)
	r.CountVMs([]string{"vm1"}, 1)
	if r.VMs != 1 || r.VMProvisions != 2 || r.VMFailed != 1 || r.VMBooted != 1 || r.Provisions != 3 || r.Failed != 1 {
		t.Fatalf("vms %d, vm provisions %d (%d failed, %d booted) of %d (%d failed); want 1, 2 (1, 1) of 3 (1)",
			r.VMs, r.VMProvisions, r.VMFailed, r.VMBooted, r.Provisions, r.Failed)
	}
	if line := r.BenchLine(); !strings.HasSuffix(line, " vms=1 vm_provisions=2 vm_failed=1 vm_booted=1") {
		t.Errorf("BENCH line %q does not end with the VMs' figures", line)
	}
}
