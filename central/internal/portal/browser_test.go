package portal_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/internal/browsertest"
)

// portalPage is the page object of every portal page: the navigation,
// the session and the live stream.
type portalPage struct {
	t *testing.T
	b *browsertest.Browser
	e *env
}

// count is the number of elements data-test=name.
func (p portalPage) count(name string) int {
	p.t.Helper()
	return browsertest.Eval[int](p.b, "count "+name, fmt.Sprintf(`document.querySelectorAll('[data-test=%q]').length`, name))
}

// waitText waits until the first element data-test=name reads text.
func (p portalPage) waitText(name, text string) {
	p.t.Helper()
	p.b.WaitJS(fmt.Sprintf("%s to read %q", name, text),
		fmt.Sprintf(`(document.querySelector('[data-test=%q]') || {}).textContent === %q`, name, text))
}

// signIn signs in with token from the sign-in page.
func (p portalPage) signIn(token, as string) {
	p.t.Helper()
	p.b.Navigate(p.e.URL + "/")
	p.b.Fill("signin-token", token)
	p.b.ClickToPage("signin-submit")
	p.b.WaitText(as)
}

// live waits until the page follows the fleet's stream (the banner
// hidden once it opened).
func (p portalPage) live() {
	p.t.Helper()
	p.b.WaitJS("the fleet stream to open", `document.body.hasAttribute("data-last") && !document.body.hasAttribute("data-disconnected") && window.htmx !== undefined`)
}

// TestPortalBrowser: central's portal over fakes of the fleet and the
// orders, in headless chromium. An operator signs in, sees the fleet,
// searches the machines, orders a bulk power cycle of the search's
// result through its preview (which names the machine it will not order
// and says the offline site's orders wait), confirms, and watches each
// machine's result change live as the fleet does, without a reload;
// uploads a file with its progress; a viewer finds no order form and
// sees a machine's waterfall fill in live as its trace's last spans
// arrive, and the charts page from the navigation; a viewer finds no
// order form and
// gets 403 for a forged POST made with a valid session and CSRF token.
// The pages asked nothing of any host but the portal's. With
// -browsertest.screenshots, every page is captured.
func TestPortalBrowser(t *testing.T) {
	e := start(t)
	b := browsertest.Start(t, browsertest.Allow(e.URL))
	p := portalPage{t: t, b: b, e: e}

	p.signIn("tok-operator", "olga (operator)")
	p.waitText("link-state", "connected")
	b.Capture("portal-fleet")

	b.ClickToPage("nav-machines")
	b.Fill("filter-q", "state:failed colour:blue")
	if code := b.ClickForPage("filter-submit"); code != 400 {
		t.Errorf("a search not understood: %d, want 400", code)
	}
	p.waitText("filter-error", `The search was not understood: term "colour:blue" (term 2): unknown field "colour"`)
	b.Fill("filter-q", "site:*")
	b.ClickToPage("filter-submit")
	p.waitText("machine-count", "5")
	b.Capture("portal-machines")

	b.SetValue("bulk-action", "power-cycle")
	b.ClickToPage("bulk-submit")
	p.waitText("confirm-question", "Power-cycle 4 machines? They are what the search site:* matches now.")
	if n := p.count("confirm-machine"); n != 5 {
		t.Errorf("the preview names %d machines, want 5 (one of them refused)", n)
	}
	if p.count("confirm-offline") != 1 {
		t.Error("the preview does not say the offline site's order will wait")
	}
	b.Capture("portal-preview")

	b.ClickToPage("confirm-yes")
	p.live()
	p.waitText("results-total", "4")
	p.waitText("results-done", "0")
	batch := "b1796623200-0001"
	e.fleet.setStatus(batch, "running")
	p.waitText("result-status", "running")
	e.fleet.setStatus(batch, "succeeded")
	p.waitText("results-done", "4")
	p.waitText("result-status", "succeeded")
	b.Capture("portal-results")

	b.Navigate(e.URL + "/machines/eu1/m1")
	p.waitText("machine-site", "eu1")
	if p.count("order-form") != 1 || p.count("site-console-link") != 1 {
		t.Error("the operator's machine page has no order form or no link to the site's console")
	}
	b.Capture("portal-machine")
	waterfallAndCharts(t, p)
	b.Navigate(e.URL + "/sites")
	b.Capture("portal-sites")
	b.Navigate(e.URL + "/audit")
	b.Capture("portal-audit")
	uploadFile(t, p)
	b.Capture("portal-images")

	b.ClickToPage("sign-out")
	p.signIn("tok-viewer", "vera (viewer)")
	b.Navigate(e.URL + "/machines")
	p.waitText("machine-count", "5")
	if n := p.count("bulk-form") + browsertest.Eval[int](b, "count buttons", `document.querySelectorAll('main button').length`); n != 1 {
		t.Errorf("a viewer's machines page has %d order forms and buttons, want the search's button only", n)
	}
	forged := `(async () => {
		const csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
		const body = new URLSearchParams({csrf: csrf, action: "power-off", target: "eu1/m1"});
		return (await fetch("/orders", {method: "POST", body})).status;
	})()`
	if code := browsertest.Eval[int](b, "a viewer's forged POST", forged); code != 403 {
		t.Errorf("a viewer's forged POST: %d, want 403", code)
	}
	if len(e.placer.placed) != 1 {
		t.Errorf("%d requests placed, want the operator's one", len(e.placer.placed))
	}
	if f := b.Foreign(e.URL); len(f) > 0 {
		t.Errorf("the pages asked other hosts: %v", f)
	}
}

// uploadFile uploads a file from the images page and waits for the digest
// central answers.
func uploadFile(t *testing.T, p portalPage) {
	t.Helper()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	file := filepath.Join(t.TempDir(), "tiny.raw")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	p.b.Navigate(p.e.URL + "/images")
	p.b.SetFiles("upload-file", file)
	p.b.Fill("upload-name", "tiny.raw")
	p.b.Click("upload-submit")
	p.waitText("upload-status", "stored as sha256:"+hex.EncodeToString(sum[:]))
	if v := browsertest.Eval[int](p.b, "the progress bar", `document.querySelector('[data-test=upload-progress]').value`); v != 100 {
		t.Errorf("the progress bar ends at %d", v)
	}
}

// waterfallAndCharts opens the page of a machine provisioning, whose
// trace has every span but its first boot's metadata request: the
// waterfall shows nine phases and names the missing one; when the
// request's span arrives and the fleet changes (the site's events come
// with the spans), the page shows all ten, live. The charts page, from
// the navigation, counts the machine's provision once it has ended.
func waterfallAndCharts(t *testing.T, p portalPage) {
	t.Helper()
	spans := centraltest.ProvisionTrace(traceID, t0)
	p.e.traces.set(traceID, spans[:len(spans)-1])
	p.e.provisionOn("eu1", "m2", fleet.OrderRunning)
	p.b.Navigate(p.e.URL + "/machines/eu1/m2")
	p.live()
	p.waitText("trace-complete", "Not yet there: first boot to metadata.")
	if n := p.count("phase-row"); n != 9 {
		t.Errorf("%d phases drawn, want 9", n)
	}
	if n := p.count("span-row"); n != len(spans)-1 {
		t.Errorf("%d spans listed, want %d", n, len(spans)-1)
	}
	p.e.traces.set(traceID, spans)
	p.e.provisionOn("eu1", "m2", fleet.OrderSucceeded)
	p.waitText("trace-complete", "Every phase is there.")
	if n := p.count("phase-row"); n != 10 {
		t.Errorf("%d phases drawn after the last span, want 10", n)
	}
	p.b.Capture("portal-waterfall")

	p.b.ClickToPage("nav-charts")
	p.waitText("charts-provisions", "1")
	p.waitText("ratio-pct", "100%")
	p.b.Capture("portal-charts")
}
