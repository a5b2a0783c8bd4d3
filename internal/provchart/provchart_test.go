package provchart

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// at is a provision placed m minutes after t0 that took took minutes.
func at(m, took int, ok bool) Provision {
	s := t0.Add(time.Duration(m) * time.Minute)
	return Provision{Start: s, End: s.Add(time.Duration(took) * time.Minute), OK: ok}
}

func TestSummarize(t *testing.T) {
	var ps []Provision
	for i := 1; i <= 10; i++ {
		ps = append(ps, at(i*5, i, true))
	}
	ps = append(ps, at(60, 3, false))
	s := Summarize(ps, t0, t0.Add(2*time.Hour))
	want := Summary{Provisions: 11, Failed: 1, PerHour: 5.5, SuccessRatio: 10.0 / 11,
		P50: 5 * time.Minute, P90: 9 * time.Minute, P99: 10 * time.Minute, Max: 10 * time.Minute}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if got := Summarize(nil, t0, t0); got != (Summary{}) {
		t.Errorf("summary of nothing %+v, want zero", got)
	}
}

// TestCostOf: a provision that ran during the window and failed, or
// took longer than the slow bound, is what the annotation cost; one
// outside it is not counted.
func TestCostOf(t *testing.T) {
	ps := []Provision{at(0, 5, true), at(10, 20, true), at(12, 2, false), at(40, 5, false), at(11, 3, true)}
	a := Annotation{Kind: "site.kill", Start: t0.Add(11 * time.Minute), End: t0.Add(15 * time.Minute)}
	if diff := cmp.Diff(Cost{During: 3, Failed: 1, Slow: 1}, CostOf(a, ps, 10*time.Minute)); diff != "" {
		t.Errorf("cost (-want +got):\n%s", diff)
	}
	other := Provision{Start: t0.Add(12 * time.Minute), End: t0.Add(13 * time.Minute), Site: "ams1"}
	onSite := a
	onSite.Site = "fra1"
	if got := CostOf(onSite, append(ps, other), 10*time.Minute); got.During != 3 {
		t.Errorf("a site's annotation counts %d provisions, want 3 (not another site's)", got.During)
	}
	instant := Annotation{Kind: "note", Start: t0.Add(42 * time.Minute), End: t0.Add(42 * time.Minute)}
	costed := CostAll([]Annotation{a, instant}, ps, map[string]string{"note": "#123456"})
	if costed[0].Kind != "note" || costed[0].Failed != 1 || costed[0].Color != "#123456" || costed[1].Kind != "site.kill" {
		t.Errorf("CostAll %+v, want the newest first with its own colour", costed)
	}
}

func TestBinFor(t *testing.T) {
	for span, want := range map[time.Duration]time.Duration{
		10 * time.Minute: 10 * time.Second, time.Hour: time.Minute, 24 * time.Hour: 30 * time.Minute,
		7 * 24 * time.Hour: 3 * time.Hour, 400 * 24 * time.Hour: 7 * 24 * time.Hour,
	} {
		if got := BinFor(span); got != want {
			t.Errorf("BinFor(%s) = %s, want %s", span, got, want)
		}
	}
}

// TestWindowAndIn: the window reaches back to the oldest thing, within
// its bounds; In keeps what touches it.
func TestWindowAndIn(t *testing.T) {
	now := t0.Add(48 * time.Hour)
	ps := []Provision{at(0, 5, true), at(47*60, 5, true)}
	as := []Annotation{{Kind: "x", Start: t0.Add(-time.Hour), End: t0}}
	from, to := Window(ps, as, now, time.Hour, 24*time.Hour)
	if !from.Equal(now.Add(-24*time.Hour)) || !to.Equal(now) {
		t.Errorf("window %s–%s, want the last 24 h", from, to)
	}
	from, _ = Window(ps[1:], nil, now, 6*time.Hour, 24*time.Hour)
	if !from.Equal(now.Add(-6 * time.Hour)) {
		t.Errorf("window from %s, want at least 6 h", from)
	}
	pin, ain := In(ps, as, now.Add(-24*time.Hour), now)
	if len(pin) != 1 || len(ain) != 0 {
		t.Errorf("In kept %d provisions and %d annotations, want 1 and 0", len(pin), len(ain))
	}
}

// TestSVG: the picture is well-formed, draws a band per annotation with
// its text escaped, the bars of both outcomes and the ratio line.
func TestSVG(t *testing.T) {
	ps := []Provision{at(1, 5, true), at(2, 6, true), at(30, 4, false)}
	as := []Annotation{
		{Kind: "wan.partition", Site: "dc1", Text: `cut <dc1> & "all"`, Start: t0.Add(20 * time.Minute), End: t0.Add(35 * time.Minute)},
		{Kind: "site.kill", Start: t0.Add(50 * time.Minute), End: t0.Add(50 * time.Minute)},
	}
	svg := Chart{From: t0, To: t0.Add(time.Hour), Provisions: ps, Annotations: as}.SVG()
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not well-formed XML: %v\n%s", err, svg)
	}
	for what, n := range map[string]int{`class="band"`: 2, `class="ok"`: 2, `class="failed"`: 1, `class="ratio"`: 1,
		`data-kind="wan.partition"`: 1, "cut &lt;dc1&gt; &amp; &#34;all&#34;": 2, "per 1m": 1, "p90 6m0s": 2} {
		if got := strings.Count(svg, what); got != n {
			t.Errorf("%q appears %d times, want %d", what, got, n)
		}
	}
	empty := Chart{From: t0, To: t0.Add(time.Hour)}.SVG()
	if !strings.Contains(empty, "no provision ended in this window") {
		t.Error("an empty chart does not say it is empty")
	}
	if err := xml.Unmarshal([]byte(empty), new(struct{})); err != nil {
		t.Fatalf("empty chart not well-formed: %v", err)
	}
}

// TestNewView: the view of a window keeps what touches it, and costs
// each annotation against the window's p90; a window's name parses.
func TestNewView(t *testing.T) {
	ps := []Provision{at(1, 5, true), at(2, 6, true), at(3, 20, true), at(30, 4, false), at(-300, 5, false)}
	as := []Annotation{{Kind: "wan.flap", Start: t0.Add(10 * time.Minute), End: t0.Add(35 * time.Minute)},
		{Kind: "old", Start: t0.Add(-10 * time.Hour), End: t0.Add(-9 * time.Hour)}}
	span, err := ParseWindow("1h")
	if err != nil {
		t.Fatal(err)
	}
	v := NewView("1h", span, t0.Add(time.Hour), ps, as, nil)
	if v.Summary.Provisions != 4 || v.Ratio != "75.0 %" || v.P90 != "20m0s" || len(v.Annotations) != 1 {
		t.Fatalf("view %+v", v)
	}
	if c := v.Annotations[0].Cost; c != (Cost{During: 2, Failed: 1, Slow: 0}) {
		t.Errorf("cost %+v, want the failed one during it", c)
	}
	if _, err := ParseWindow("2w"); err == nil || !strings.Contains(err.Error(), `"2w"`) {
		t.Errorf("ParseWindow(2w) = %v, want an error naming it", err)
	}
}
