package portal_test

import (
	"testing"

	"github.com/outposthq/outpost/internal/browsertest"
)

// TestChartsTimelineBrowser: in headless chromium, the charts page
// draws provisions over the last hour as an SVG whose annotation bands
// are on screen over the plot, lists the annotations with what each
// cost, and, asked for one site from its form, redraws for that site
// with only the fleet-wide band. The page asked nothing of any host but
// the portal's. With -browsertest.screenshots, it is captured.
func TestChartsTimelineBrowser(t *testing.T) {
	e := start(t)
	b := browsertest.Start(t, browsertest.Allow(e.URL))
	p := portalPage{t: t, b: b, e: e}
	p.signIn("tok-viewer", "vera (viewer)")
	b.Navigate(e.URL + "/charts?window=1h")
	p.waitText("timeline-provisions", "23")
	// Each band is drawn: as tall as the plot, at least 2 px wide, and
	// within the picture as the browser lays it out.
	const bands = `[...document.querySelectorAll('[data-test=timeline-chart] svg rect.band')]`
	const drawn = bands + `.filter(r => { const b = r.getBoundingClientRect(), s = r.ownerSVGElement.getBoundingClientRect();
		return b.width >= 1 && b.height > 50 && b.left >= s.left && b.right <= s.right + 1 }).length`
	if n := browsertest.Eval[int](b, "the bands drawn", drawn); n != 2 {
		t.Errorf("%d bands drawn on screen, want 2", n)
	}
	if n := browsertest.Eval[int](b, "the failed bars", `document.querySelectorAll('[data-test=timeline-chart] svg rect.failed').length`); n < 1 {
		t.Error("no failed provision is drawn")
	}
	if n := p.count("annotation-row"); n != 2 {
		t.Errorf("%d annotations listed, want 2", n)
	}
	p.waitText("annotation-failed", "0") // the newest, the power dip, cost no failure
	b.Capture("portal-charts-timeline")

	b.SetValue("timeline-site", "us1")
	b.ClickToPage("timeline-submit")
	p.waitText("timeline-site-name", "us1")
	p.waitText("timeline-provisions", "10")
	if n := browsertest.Eval[int](b, "the bands drawn", drawn); n != 1 {
		t.Errorf("us1: %d bands drawn, want the fleet-wide one", n)
	}
	if foreign := b.Foreign(e.URL); len(foreign) > 0 {
		t.Errorf("the pages asked other hosts: %v", foreign)
	}
}
