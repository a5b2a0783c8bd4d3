package tracing

import (
	"slices"
	"strings"
	"time"
)

// The phases of a provision, in order: the waterfall the consoles draw.
const (
	PhaseOrderDelivery = "order delivery"
	PhaseBMC           = "BMC"
	PhaseFirmwareDHCP  = "firmware to DHCP"
	PhaseIPXE          = "iPXE"
	PhaseInstallerBoot = "installer boot"
	PhaseWipe          = "wipe"
	PhaseImageWrite    = "image write"
	PhaseConfigure     = "configure"
	PhaseReboot        = "reboot"
	PhaseFirstBoot     = "first boot to metadata"
)

// PhaseNames lists the phases in order.
var PhaseNames = []string{PhaseOrderDelivery, PhaseBMC, PhaseFirmwareDHCP, PhaseIPXE, PhaseInstallerBoot,
	PhaseWipe, PhaseImageWrite, PhaseConfigure, PhaseReboot, PhaseFirstBoot}

// Phase is one phase of a provision's waterfall.
type Phase struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Duration is how long the phase took.
func (p Phase) Duration() time.Duration { return p.End.Sub(p.Start) }

// Phases reads the waterfall of one provision from its trace's spans
// (in any order), by their names (the Span* constants). A phase whose
// spans are not there (yet: a trace fills in as its spans arrive) is
// left out, as is one that would end before it starts (clocks of
// different nodes disagree): the phases returned are in PhaseNames'
// order.
//
//   - order delivery: central placing the order to the site applying it;
//   - BMC: the first BMC job's start to the last's end;
//   - firmware to DHCP: the BMC's end (or the order's applying) to the
//     end of the machine's first DHCP exchange after it;
//   - iPXE: that exchange's end to the end of the last boot fetch (the
//     kernel and initrd) before the agent starts;
//   - installer boot: that end to the agent's start;
//   - wipe, image write, configure, reboot: the agent's actions of each
//     kind (disk.wipe; image.write; the reboot, kexec and power actions, whose
//     phase ends at the machine's next DHCP exchange or metadata request;
//     every other action is configure);
//   - first boot to metadata: the reboot's end to the installed OS's
//     first metadata request.
func Phases(spans []Span) []Phase {
	var w waterfall
	for i := range spans {
		w.add(&spans[i])
	}
	return w.phases()
}

// waterfall gathers the instants the phases are made of.
type waterfall struct {
	place, apply           span
	bmc                    span // first start, last end
	dhcp, fetch, meta      []*Span
	agentStart             time.Time
	wipe, image, configure span
	reboot                 span
}

// span is an interval grown to cover what is added to it.
type span struct{ start, end time.Time }

func (s *span) cover(a, b time.Time) {
	if s.start.IsZero() || a.Before(s.start) {
		s.start = a
	}
	if b.After(s.end) {
		s.end = b
	}
}

func (s span) ok() bool { return !s.start.IsZero() }

func (w *waterfall) add(s *Span) {
	switch {
	case s.Name == SpanOrderPlace:
		w.place.cover(s.Start, s.End)
	case s.Name == SpanOrderApply:
		w.apply.cover(s.Start, s.End)
	case strings.HasPrefix(s.Name, SpanBMCPrefix):
		w.bmc.cover(s.Start, s.End)
	case s.Name == SpanDHCP:
		w.dhcp = append(w.dhcp, s)
	case s.Name == SpanBootHTTP || s.Name == SpanTFTP:
		w.fetch = append(w.fetch, s)
	case s.Name == SpanMetadata:
		w.meta = append(w.meta, s)
	case s.Name == SpanAgent:
		if w.agentStart.IsZero() || s.Start.Before(w.agentStart) {
			w.agentStart = s.Start
		}
	case strings.HasPrefix(s.Name, SpanActionPrefix):
		switch t := s.Attrs[AttrActionType]; {
		case t == "disk.wipe":
			w.wipe.cover(s.Start, s.End)
		case t == "image.write":
			w.image.cover(s.Start, s.End)
		case t == "reboot" || t == "kexec" || strings.HasPrefix(t, "power"):
			w.reboot.cover(s.Start, s.End)
		default:
			w.configure.cover(s.Start, s.End)
		}
	}
}

// firstAfter is the earliest span of spans starting at or after t (nil
// if none); its end if byEnd.
func firstAfter(spans []*Span, t time.Time) *Span {
	var best *Span
	for _, s := range spans {
		if !s.Start.Before(t) && (best == nil || s.Start.Before(best.Start)) {
			best = s
		}
	}
	return best
}

func (w *waterfall) phases() []Phase {
	var out []Phase
	add := func(name string, a, b time.Time) {
		if !a.IsZero() && !b.IsZero() && !b.Before(a) {
			out = append(out, Phase{Name: name, Start: a, End: b})
		}
	}
	if w.place.ok() && w.apply.ok() {
		add(PhaseOrderDelivery, w.place.start, w.apply.start)
	}
	if w.bmc.ok() {
		add(PhaseBMC, w.bmc.start, w.bmc.end)
	}
	powerOn := w.bmc.end
	if powerOn.IsZero() {
		powerOn = w.apply.end
	}
	var dhcpEnd time.Time
	if !powerOn.IsZero() {
		if d := firstAfter(w.dhcp, powerOn); d != nil {
			dhcpEnd = d.End
			add(PhaseFirmwareDHCP, powerOn, dhcpEnd)
		}
	}
	var fetched time.Time
	if !dhcpEnd.IsZero() && !w.agentStart.IsZero() {
		for _, f := range w.fetch {
			if !f.Start.Before(dhcpEnd) && f.End.Before(w.agentStart) && f.End.After(fetched) {
				fetched = f.End
			}
		}
		add(PhaseIPXE, dhcpEnd, fetched)
		add(PhaseInstallerBoot, fetched, w.agentStart)
	}
	if w.wipe.ok() {
		add(PhaseWipe, w.wipe.start, w.wipe.end)
	}
	if w.image.ok() {
		add(PhaseImageWrite, w.image.start, w.image.end)
	}
	if w.configure.ok() {
		add(PhaseConfigure, w.configure.start, w.configure.end)
	}
	if w.reboot.ok() {
		// The reboot ends when the installed OS first shows itself: its
		// DHCP exchange, or else its first metadata request.
		var up time.Time
		if d := firstAfter(w.dhcp, w.reboot.start); d != nil {
			up = d.End
		}
		first := firstAfter(w.meta, w.reboot.start)
		if up.IsZero() && first != nil {
			up = first.Start
		}
		add(PhaseReboot, w.reboot.start, up)
		if first != nil && !up.IsZero() {
			add(PhaseFirstBoot, up, first.Start)
		}
	}
	slices.SortStableFunc(out, func(a, b Phase) int {
		return slices.Index(PhaseNames, a.Name) - slices.Index(PhaseNames, b.Name)
	})
	return out
}

// Completeness says how whole a trace is: the services whose spans it
// holds, its spans whose parent it does not hold (a trace's root has
// none; any other such span's parent is missing or not yet arrived),
// and whether every phase of a provision is in it.
type Completeness struct {
	Spans    int      `json:"spans"`
	Services []string `json:"services"`
	Orphans  int      `json:"orphans"`
	Phases   int      `json:"phases"`
	Complete bool     `json:"complete"`
	Missing  []string `json:"missing,omitempty"`
}

// Check reports a provision trace's Completeness: Complete when it has
// one root, no orphan and every phase.
func Check(spans []Span) Completeness {
	ids := make(map[string]bool, len(spans))
	services := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
		services[s.Service] = true
	}
	c := Completeness{Spans: len(spans)}
	roots := 0
	for _, s := range spans {
		switch {
		case s.Parent == "":
			roots++
		case !ids[s.Parent]:
			c.Orphans++
		}
	}
	for s := range services {
		c.Services = append(c.Services, s)
	}
	slices.Sort(c.Services)
	got := map[string]bool{}
	for _, p := range Phases(spans) {
		got[p.Name] = true
	}
	c.Phases = len(got)
	for _, name := range PhaseNames {
		if !got[name] {
			c.Missing = append(c.Missing, name)
		}
	}
	c.Complete = roots == 1 && c.Orphans == 0 && len(c.Missing) == 0
	return c
}
