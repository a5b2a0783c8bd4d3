// Package provchart draws provisioning over time as one server-rendered
// SVG picture a person reads at a glance: the provisions that ended per
// interval (succeeded stacked under failed) with the success ratio over
// them, the incidents and faults an operator or a tool recorded as
// annotations (bands in their kind's colour, named), and the
// distribution of time to provision over the same window. It also
// computes the figures beside the picture: provisions per hour, the
// success ratio, the quantiles of time to provision, and what each
// annotation cost (the provisions during it that failed or took longer
// than the window's p90).
//
// Central's portal (fleet-wide and per site), the appliance's console
// (the site's own, from its own store) and the soak's report draw with
// it, so the three pictures are the same. It is pure: no I/O, no clock
// (the caller gives the window).
package provchart

import (
	"cmp"
	"slices"
	"time"
)

// Provision is one provision that ended: when it was placed, when it
// ended, whether it succeeded, and its site ("" when the chart is one
// site's).
type Provision struct {
	Start, End time.Time
	OK         bool
	Site       string
}

// Took is how long the provision took.
func (p Provision) Took() time.Duration { return p.End.Sub(p.Start) }

// Annotation is an incident or a fault recorded against the fleet or
// one site: its kind ("site.kill", "power outage"), its window and what
// it was. End equal to Start marks an instant.
type Annotation struct {
	Site, Kind, Text string
	Start, End       time.Time
}

// overlaps says whether p ran during a's window, at a's site if a
// names one (a fleet-wide chart holds every site's provisions).
func (a Annotation) overlaps(p Provision) bool {
	if a.Site != "" && p.Site != "" && p.Site != a.Site {
		return false
	}
	return !p.End.Before(a.Start) && !p.Start.After(a.End)
}

// Summary is the figures of the provisions that ended in a window.
type Summary struct {
	// Provisions counts them, Failed those that failed.
	Provisions, Failed int
	// PerHour is Provisions per hour of the window; SuccessRatio is the
	// share that succeeded (0 without provisions).
	PerHour, SuccessRatio float64
	// The nearest-rank quantiles and the maximum of the time to
	// provision of those that succeeded.
	P50, P90, P99, Max time.Duration
}

// Summarize computes the figures of ps over the window [from, to].
func Summarize(ps []Provision, from, to time.Time) Summary {
	var s Summary
	var took []time.Duration
	for _, p := range ps {
		s.Provisions++
		if !p.OK {
			s.Failed++
			continue
		}
		took = append(took, p.Took())
	}
	if s.Provisions > 0 {
		s.SuccessRatio = float64(s.Provisions-s.Failed) / float64(s.Provisions)
	}
	if h := to.Sub(from).Hours(); h > 0 {
		s.PerHour = float64(s.Provisions) / h
	}
	slices.Sort(took)
	s.P50, s.P90, s.P99 = Quantile(took, 0.50), Quantile(took, 0.90), Quantile(took, 0.99)
	if len(took) > 0 {
		s.Max = took[len(took)-1]
	}
	return s
}

// Quantile is the nearest-rank q-quantile (0 < q ≤ 1) of sorted ds, 0
// for none.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// Cost is what an annotation cost: the provisions that ran during its
// window, those of them that failed, and those that succeeded but took
// longer than the slow bound (the window's p90).
type Cost struct {
	During, Failed, Slow int
}

// CostOf is what a cost: of ps, those that ran during it (at its site,
// if it names one) and failed or took longer than slow. A slow of 0
// counts none slow.
func CostOf(a Annotation, ps []Provision, slow time.Duration) Cost {
	var c Cost
	for _, p := range ps {
		if !a.overlaps(p) {
			continue
		}
		c.During++
		switch {
		case !p.OK:
			c.Failed++
		case slow > 0 && p.Took() > slow:
			c.Slow++
		}
	}
	return c
}

// Costed is an annotation with what it cost.
type Costed struct {
	Annotation
	Cost
	// Color is its band's colour in the picture.
	Color string
}

// CostAll is each annotation with what it cost against ps, slow being
// ps's p90, newest first.
func CostAll(as []Annotation, ps []Provision, colors map[string]string) []Costed {
	var took []time.Duration
	for _, p := range ps {
		if p.OK {
			took = append(took, p.Took())
		}
	}
	slices.Sort(took)
	slow := Quantile(took, 0.90)
	out := make([]Costed, 0, len(as))
	for _, a := range as {
		out = append(out, Costed{Annotation: a, Cost: CostOf(a, ps, slow), Color: colorOf(a.Kind, colors)})
	}
	slices.SortStableFunc(out, func(a, b Costed) int { return b.Start.Compare(a.Start) })
	return out
}

// Window is the window a chart of ps and as should show, ending at
// now: back to the oldest provision's start or annotation's start, at
// least min and at most max long.
func Window(ps []Provision, as []Annotation, now time.Time, least, most time.Duration) (from, to time.Time) {
	from = now.Add(-least)
	for _, p := range ps {
		from = minTime(from, p.Start)
	}
	for _, a := range as {
		from = minTime(from, a.Start)
	}
	return maxTime(from, now.Add(-most)), now
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// In keeps the provisions that ended in [from, to] and the annotations
// that touch it.
func In(ps []Provision, as []Annotation, from, to time.Time) ([]Provision, []Annotation) {
	var pin []Provision
	for _, p := range ps {
		if !p.End.Before(from) && !p.End.After(to) {
			pin = append(pin, p)
		}
	}
	var ain []Annotation
	for _, a := range as {
		if !a.End.Before(from) && !a.Start.After(to) {
			ain = append(ain, a)
		}
	}
	slices.SortStableFunc(ain, func(a, b Annotation) int { return cmp.Compare(a.Start.UnixNano(), b.Start.UnixNano()) })
	return pin, ain
}
