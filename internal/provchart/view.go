package provchart

import (
	"fmt"
	"html/template"
	"time"
)

// Windows are the windows a charts page offers, by name, shortest
// first.
var Windows = []struct {
	Name string
	Span time.Duration
}{{"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// DefaultWindow is the window a page shows unless asked for another.
const DefaultWindow = "24h"

// ParseWindow is the span of the window named name ("" for the
// default); an unknown name is an error listing the known ones.
func ParseWindow(name string) (time.Duration, error) {
	if name == "" {
		name = DefaultWindow
	}
	var names []string
	for _, w := range Windows {
		if w.Name == name {
			return w.Span, nil
		}
		names = append(names, w.Name)
	}
	return 0, fmt.Errorf("window %q is not one of %v", name, names)
}

// View is what a charts page shows of a window: the picture, its
// figures, and each annotation with what it cost.
type View struct {
	// Window names the window; From and To bound it.
	Window   string
	From, To time.Time
	Chart    template.HTML
	Summary  Summary
	// PerHour, Ratio (percent), P50, P90, P99 are the figures as the
	// page prints them.
	PerHour, Ratio, P50, P90, P99 string
	Annotations                   []Costed
}

// NewView computes the view of window name ending at to, of the
// provisions ps that ended in it and the annotations as that touch it.
func NewView(name string, span time.Duration, to time.Time, ps []Provision, as []Annotation, colors map[string]string) View {
	from := to.Add(-span)
	ps, as = In(ps, as, from, to)
	s := Summarize(ps, from, to)
	v := View{Window: name, From: from, To: to, Summary: s, Annotations: CostAll(as, ps, colors),
		Chart:   Chart{From: from, To: to, Provisions: ps, Annotations: as, Colors: colors}.HTML(),
		PerHour: fmt.Sprintf("%.1f", s.PerHour), Ratio: "–",
		P50: roundD(s.P50).String(), P90: roundD(s.P90).String(), P99: roundD(s.P99).String()}
	if s.Provisions > 0 {
		v.Ratio = fmt.Sprintf("%.1f %%", 100*s.SuccessRatio)
	}
	return v
}
