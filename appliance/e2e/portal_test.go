package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
)

// TestPortalBrowser: the central portal of a real centrald, over HTTPS
// from a CA the browser trusts, in headless chromium, with two real
// sites synced with central through WANs the test cuts and heals
// (portalLab). The lab is checked first through central's API, so that
// a broken lab is told apart from a broken portal: both sites sync, the
// VM's ipmi_sim BMC and every simulated machine's Redfish BMC answer,
// and a power cycle placed through PUT /v1/sites/{site}/orders/{key}
// on a Redfish-backed machine of each site completes there.
//
// Then, in the browser, an operator signs in; filters the fleet to the
// VM by its MAC; orders its provisioning from its page (order form,
// preview, confirmation) and watches the order and the workflow go
// through their steps on the machine page without a reload, until the
// VM runs the installed test OS with the hostname ordered; the page
// names the operator who placed the order. The WAN to
// site B is cut: the fleet overview shows it offline, live; a power-on
// ordered for one of its machines is previewed as waiting for the site
// and placed, not delivered, while the machine's BMC hears nothing;
// when the WAN heals the order is delivered and succeeds, live, and the
// BMC powers on. A bulk power cycle of the 50 simulated machines of
// both sites (a filter's result, previewed, confirmed) shows 50
// results, each succeeded, and each BMC received its reset. A POST
// without the CSRF token is refused (403) and places nothing. A viewer
// then finds no order form or button, and a POST forged with the
// viewer's valid session and CSRF token is refused with 403, as one
// without the token is, and neither places anything. The pages asked
// nothing of any host but central. With -browsertest.screenshots, the
// pages are captured (portal-*.png).
func TestPortalBrowser(t *testing.T) {
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	l := startPortalLab(t)
	step("the lab is up: central at %s, %s and %s synced with their %d machines", l.Cen.URL, portalSiteA, portalSiteB, 1+2*simsPerSite)
	checkPortalLab(t, l)
	step("the lab answers through central's API")

	operator := l.Token("ops-olga", access.Operator)
	viewer := l.Token("auditor-vic", access.Viewer)
	p := &portal{t: t, b: l.Browser(), url: l.Cen.URL}
	p.signIn(operator, "ops-olga", "operator")
	p.fleet()
	p.b.Capture("portal-fleet")
	step("signed in as the operator")

	provisionFromPortal(t, l, p)
	step("the VM is provisioned, followed live from its page")
	orderWhileOffline(t, l, p)
	step("the order placed for the offline site was delivered once its WAN healed")
	bulkPowerCycle(t, l, p)
	step("the bulk power cycle of 50 machines across both sites succeeded")
	refuseForged(t, l, p, "the operator's POST without the CSRF token", false)

	p.signOut()
	p.signIn(viewer, "auditor-vic", "viewer")
	viewerCannotOrder(t, l, p)
	step("the viewer can order nothing")

	if f := p.b.Foreign(l.Cen.URL); len(f) > 0 {
		t.Errorf("the portal's pages asked other hosts: %+v", f)
	}
}

// checkPortalLab checks the lab through central's API, before any
// portal page: the VM's BMC answers (the VM is off), every simulated
// machine's site reaches its BMC, and a power cycle placed at central
// (PUT /v1/sites/{site}/orders/{key}, today's API) on a Redfish-backed
// machine of each site completes at that site, its BMC powering on.
func checkPortalLab(t *testing.T, l *portalLab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if st, err := l.VM.BMC.PowerState(ctx); err != nil || st != "off" {
		t.Fatalf("the VM's BMC says power %q (%v), want off", st, err)
	}
	l.waitBMCsPolled()
	checks := map[string]string{portalSiteA: "a-25", portalSiteB: "b-25"}
	for site, id := range checks {
		order := map[string]any{"action": store.OrderPowerCycle, "machine_id": id}
		if err := l.Cen.Do("PUT", "/v1/sites/"+site+"/orders/lab-check-"+id, order, nil); err != nil {
			t.Fatalf("place a power cycle for %s/%s at central: %v", site, id, err)
		}
	}
	for site, id := range checks {
		if o := l.SiteOrder(ctx, site, "lab-check-"+id); o.State != store.OrderSucceeded {
			t.Fatalf("the power cycle of %s/%s at the site: %s %q", site, id, o.State, o.Reason)
		}
		if pw := l.Sims[site+"/"+id].Power(); pw != "On" {
			t.Fatalf("%s/%s's BMC says power %s after the power cycle succeeded", site, id, pw)
		}
	}
}

// provisionFromPortal: the operator finds the VM by its MAC, orders its
// provisioning from its page, confirms the preview, and follows it on
// the machine page, which changes without loading again, until the
// machine is provisioned; the VM then runs the test OS with the
// hostname ordered.
func provisionFromPortal(t *testing.T, l *portalLab, p *portal) {
	t.Helper()
	vm := portalSiteA + "/" + portalVM
	m := p.machines()
	m.filter("mac:" + portalVMMAC)
	if rows := m.rows(); !slices.Equal(rows, []string{vm}) {
		t.Fatalf("the machines matching the VM's MAC: %v, want %s alone", rows, vm)
	}
	p.b.Capture("portal-machines")
	page := m.open(vm)
	if site := p.text(one("machine-site")); !strings.Contains(site, portalSiteA) {
		t.Errorf("the VM's page names its site %q, want %s", site, portalSiteA)
	}
	if st := p.text(one("machine-state")); !strings.Contains(st, string(store.StateReady)) {
		t.Errorf("the VM's page says it is %q before the order, want %s", st, store.StateReady)
	}
	if href := p.attrs(one("site-console-link"), "href"); len(href) != 1 || href[0] == "" {
		t.Errorf("the VM's page links to its site's console %v, want one link", href)
	}
	preview := page.order(orderForm{action: "provision", image: casImageName, template: labsite.TemplateName, hostname: "portal-host-1"})
	if got := preview.machines(); !slices.Equal(got, []string{vm}) {
		t.Fatalf("the preview is for %v, want %s", got, vm)
	}
	if preview.offline() {
		t.Error("the preview says the VM's site is offline")
	}
	p.b.Capture("portal-preview")
	order := preview.confirm()
	if st := order.status(vm); !slices.Contains(orderStatuses, st) {
		t.Fatalf("the order's page says %s's order is %q (\"\": not listed), want placed or further; %s", vm, st, p.seenNow())
	}
	p.b.Capture("portal-order")

	p.machine(vm)
	p.record("order-status", "workflow-step", "workflow-progress", "machine-state")
	line := waitTestOS(t, l, p)
	p.shown(time.Minute, "the VM provisioned, on its page", fmt.Sprintf(`(() => {
		const st = document.querySelector(%s), os = document.querySelector(%s);
		if (os && os.textContent.includes("failed")) return "the order failed: " + os.textContent.trim();
		return st && st.textContent.includes("provisioned") && os && os.textContent.includes("succeeded") ? "ok" : "" })()`,
		js(one("machine-state")), js(one("order-status"))))
	p.b.Capture("portal-machine")
	if !p.marked() {
		t.Error("the machine page loaded again to show the order's progress")
	}
	checkSeenLive(t, p.seen())
	// Who placed the order: the operator's token, by its name.
	by := append(p.texts(one("event-by")), p.text(one("order-status")))
	if !slices.ContainsFunc(by, func(s string) bool { return strings.Contains(s, "ops-olga") }) {
		t.Errorf("neither the VM's timeline nor its order says ops-olga placed the order: %q", by)
	}
	if m := testOSLine.FindStringSubmatch(line); m[1] != "portal-host-1" || m[2] != portalVM {
		t.Errorf("the test OS says hostname=%s instance-id=%s, want portal-host-1 and %s", m[1], m[2], portalVM)
	}
}

// orderStatuses are the statuses of an order placed at central that
// has not failed, in order.
var orderStatuses = []string{"placed", "delivered", "waiting", "running", "succeeded"}

// waitTestOS waits until the VM's serial console says it runs the test
// OS, and returns the line; it fails at once if the machine page says
// the order failed.
func waitTestOS(t *testing.T, l *portalLab, p *portal) string {
	t.Helper()
	var line string
	err := labsite.Poll(t.Context(), 5*time.Minute, func() error {
		serial, _ := os.ReadFile(l.VM.Serial)
		if m := testOSLine.Find(serial); m != nil {
			line = string(m)
			return nil
		}
		if st := p.text(one("order-status")); strings.Contains(st, "failed") {
			t.Fatalf("the machine page says the order %s; %s", st, p.seenNow())
		}
		return fmt.Errorf("no line matching %q in the VM's console %s yet", testOSLine, l.VM.Serial)
	})
	if err != nil {
		t.Fatalf("the VM did not come up provisioned: %v", err)
	}
	return line
}

// checkSeenLive checks what the machine page showed while the VM
// provisioned: the order's status and the workflow's step changed in
// the page, and each action of the install template showed in the
// workflow's step or in a timeline row that came in.
func checkSeenLive(t *testing.T, seen map[string][]string) {
	t.Helper()
	for k, v := range seen {
		t.Logf("the machine page showed %s: %q", k, v)
	}
	if st := seen["order-status"]; len(st) < 2 {
		t.Errorf("the order's status never changed in the page: %q", st)
	}
	if st := seen["workflow-step"]; len(st) < 2 {
		t.Errorf("the workflow's step never changed in the page: %q", st)
	}
	shown := strings.Join(append(append([]string(nil), seen["workflow-step"]...), seen["new-event-rows"]...), "\n")
	for _, a := range labsite.InstallTemplate().Actions {
		if !strings.Contains(shown, a.Name) {
			t.Errorf("the step %q never showed in the machine page", a.Name)
		}
	}
}

// orderWhileOffline: with the WAN to site B cut, the fleet overview
// shows the site offline without loading again; a power-on ordered for
// one of its machines is previewed as waiting for the site and stays
// placed (central holds a revision the site has not applied, and the
// BMC hears nothing); once the WAN heals, the order page shows it
// delivered and succeeded without loading again, and the BMC is on.
func orderWhileOffline(t *testing.T, l *portalLab, p *portal) {
	t.Helper()
	const id = "b-01"
	machine := portalSiteB + "/" + id
	rf := l.Sims[machine]
	f := p.fleet()
	if st := f.linkState(portalSiteB); st != "connected" {
		t.Errorf("the fleet overview says %s is %q before the cut, want connected", portalSiteB, st)
	}
	p.mark()
	l.CutWAN(portalSiteB)
	f.waitLinkState(portalSiteB, "offline", time.Minute)
	if !p.marked() {
		t.Error("the fleet overview loaded again to show the site offline")
	}
	p.b.Capture("portal-fleet-offline")

	resets := l.Resets()[machine]
	m := p.machines()
	m.filter("site:" + portalSiteB + " id:" + id)
	if rows := m.rows(); !slices.Equal(rows, []string{machine}) {
		t.Fatalf("the machines matching site:%s id:%s: %v", portalSiteB, id, rows)
	}
	preview := m.open(machine).order(orderForm{action: "power-on"})
	if !preview.offline() {
		t.Errorf("the preview of an order for the offline site does not say it will wait (confirm-offline); %s", p.seenNow())
	}
	p.b.Capture("portal-preview-offline")
	order := preview.confirm()
	st := order.status(machine)
	p.record("result-status")
	if st != "placed" {
		t.Errorf("the order for the offline site is %q, want placed; %s", st, p.seenNow())
	}
	if s := l.site(portalSiteB); s.Sync.Connected || s.Sync.AckedRevision >= s.Sync.LatestRevision {
		t.Errorf("central says %s is connected=%v with revision %d of %d applied: the order is not waiting", portalSiteB,
			s.Sync.Connected, s.Sync.AckedRevision, s.Sync.LatestRevision)
	}
	if n := l.Resets()[machine]; n != resets || rf.Power() != "Off" {
		t.Errorf("the offline site's BMC got %d resets and is %s", n-resets, rf.Power())
	}

	l.HealWAN(portalSiteB)
	waitFor(t, time.Minute, machine+"'s BMC powered on", func() error {
		if pw := rf.Power(); pw != "On" {
			return fmt.Errorf("power %s", pw)
		}
		return nil
	})
	order.waitEnded(1, "succeeded", time.Minute)
	if !p.marked() {
		t.Error("the order's page loaded again to show it delivered")
	}
	seen := p.seen()["result-status"]
	t.Logf("the order for the offline site showed %q", seen)
	if len(seen) == 0 || seen[0] != "placed" {
		t.Errorf("the order's page showed %q, want placed first", seen)
	}
	for _, s := range seen[1:] {
		if !slices.Contains(orderStatuses[1:], s) {
			t.Errorf("after placed, the order's page showed %q: want delivered, then its progress", s)
		}
	}
	if rf.Power() != "On" || l.Resets()[machine] <= resets {
		t.Errorf("after the order succeeded the BMC is %s with %d resets, want On and one at least", rf.Power(), l.Resets()[machine]-resets)
	}
}

// bulkPowerCycle: the operator filters the 50 simulated machines of both
// sites, orders a power cycle of them all, sees the 50 in the preview,
// confirms, and sees 50 results succeed; each BMC received a reset.
func bulkPowerCycle(t *testing.T, l *portalLab, p *portal) {
	t.Helper()
	before := l.Resets()
	want := l.SimIDs()
	m := p.machines()
	m.filter("tag:" + simTag)
	if n := m.total(); !strings.Contains(n, fmt.Sprint(len(want))) {
		t.Errorf("the machines page counts %q for tag:%s, want %d", n, simTag, len(want))
	}
	preview := m.bulk("power-cycle")
	got := preview.machines()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the bulk preview lists %d machines %v, want the %d simulated ones", len(got), got, len(want))
	}
	p.b.Capture("portal-bulk-preview")
	order := preview.confirm()
	waitFor(t, 2*time.Minute, "every BMC's reset", func() error {
		after := l.Resets()
		var missed []string
		for _, id := range want {
			if after[id] <= before[id] || l.Sims[id].Power() != "On" {
				missed = append(missed, id)
			}
		}
		if len(missed) > 0 {
			return fmt.Errorf("%d BMCs got no reset or are not on: %v", len(missed), missed)
		}
		return nil
	})
	order.waitEnded(len(want), "succeeded", time.Minute)
	p.b.Capture("portal-bulk-order")
}

// waitFor waits up to timeout for cond, failing the test with what and
// cond's last error.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := labsite.Poll(t.Context(), timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// forgedPost is a script POSTing an order for every simulated machine
// from the page (to path), with the page's CSRF token (a form's field
// named like csrf, or a csrf meta tag) or none, and answering the
// status; -1 if the page has no CSRF token to send.
func forgedPost(path string, withCSRF bool) string {
	return fmt.Sprintf(`(async () => {
		const body = new URLSearchParams({action: "power-cycle", query: "tag:%s", confirm: "yes"});
		if (%v) {
			const field = [...document.querySelectorAll("input[name]")].find(e => /csrf/i.test(e.name));
			const meta = document.querySelector("meta[name*=csrf i]");
			if (field) body.set(field.name, field.value);
			else if (meta) body.set("csrf", meta.content);
			else return -1;
		}
		const r = await fetch(%s, {method: "POST", body, redirect: "manual"});
		return r.status;
	})()`, simTag, withCSRF, js(path))
}

// refuseForged POSTs an order from the page, to the preview and to the
// placing route, and checks that each is refused with 403 and that
// central's desired state of either site did not change.
func refuseForged(t *testing.T, l *portalLab, p *portal, who string, withCSRF bool) {
	t.Helper()
	before := l.Revisions()
	for _, path := range []string{"/orders/preview", "/orders"} {
		code := evalJS[int](t, p.b, "POST "+path, forgedPost(path, withCSRF))
		if code == -1 {
			t.Fatalf("%s: the page holds no CSRF token (a form field or a meta tag named like csrf) to forge a POST with; %s", who, p.seenNow())
		}
		if code != 403 {
			t.Errorf("%s to %s: %d, want 403", who, path, code)
		}
	}
	if after := l.Revisions(); after != before {
		t.Errorf("%s changed central's desired state: revisions %v, then %v", who, before, after)
	}
}

// viewerCannotOrder: the viewer's machines page has no bulk form and
// the VM's page no order form, neither any form that POSTs but signing
// out; a POST forged with the viewer's session and CSRF token is
// refused with 403, as one without the token is.
func viewerCannotOrder(t *testing.T, l *portalLab, p *portal) {
	t.Helper()
	const orderControls = `[data-test=bulk-form], [data-test=bulk-submit], [data-test=order-form], [data-test=order-submit], [data-test=confirm-yes]`
	const postForms = `[...document.querySelectorAll("form")].filter(f => f.method.toLowerCase() === "post" && !new URL(f.action).pathname.endsWith("/signout")).length`
	m := p.machines()
	m.filter("tag:" + simTag)
	if len(m.rows()) == 0 {
		t.Error("the viewer sees no machine")
	}
	for _, page := range []string{"machines page", "VM's page"} {
		if page == "VM's page" {
			p.machine(portalSiteA + "/" + portalVM)
		}
		if n := p.count(orderControls); n != 0 {
			t.Errorf("the viewer's %s has %d order controls", page, n)
		}
		if n := evalJS[int](t, p.b, "count the forms", postForms); n != 0 {
			t.Errorf("the viewer's %s has %d forms that POST", page, n)
		}
	}
	p.b.Capture("portal-viewer")
	refuseForged(t, l, p, "the viewer's POST with a valid session and CSRF token", true)
	refuseForged(t, l, p, "the viewer's POST without the CSRF token", false)
}
