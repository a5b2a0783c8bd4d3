package soak

import (
	"strings"
	"testing"
	"time"
)

// TestSVGDrawsFaultBands: soak.svg is provchart's picture: every fault
// of the schedule is a band of its kind, in its kind's colour, and the
// provisions are its bars.
func TestSVGDrawsFaultBands(t *testing.T) {
	clk := &clock{}
	c := NewChecker(clk.Now)
	s, err := NewSchedule(5, 10*time.Minute, []string{"m1", "m2"}, nil, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Placed("a", "m1", "provision")
	clk.now = 40 * time.Second
	c.Ended("a", "failed", "bmc dead")
	r := NewReport(s, 10*time.Minute, 2, c, nil)
	svg := r.SVG()
	if got, want := strings.Count(svg, `class="band"`), len(s.Faults); got != want || want == 0 {
		t.Fatalf("%d bands, want one per fault (%d)", got, want)
	}
	for _, f := range s.Faults {
		if !strings.Contains(svg, `data-kind="`+string(f.Kind)+`" `) || !strings.Contains(svg, kindColor[string(f.Kind)]) {
			t.Errorf("no band of %s in its colour", f.Kind)
		}
	}
	if !strings.Contains(svg, `class="failed"`) {
		t.Error("the failed provision is no bar")
	}
}
