package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/internal/browsertest"
)

// Page objects of the central portal, one per page, named by the
// portal's data-test attributes and routes (the contract of issue 14):
// what a person sees and does on each page, and nothing of how the page
// is made.

// portal is the central portal in the test's browser.
type portal struct {
	t   *testing.T
	b   *browsertest.Browser
	url string // central's, https://127.0.0.1:port
}

// clickSelToPage is clickToPage for the element sel selects, which the
// messages call what.
func clickSelToPage(t *testing.T, b *browsertest.Browser, sel chromedp.CSS, what string) {
	t.Helper()
	if code := clickForPage(t, b, sel, what); code != 200 {
		t.Fatalf("click %s: the page came with %d", what, code)
	}
}

// clickForPage clicks the element sel selects, which loads another
// page, waits until that page has loaded and returns its status.
func clickForPage(t *testing.T, b *browsertest.Browser, sel chromedp.CSS, what string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, browsertest.ClickAction(sel))
	if err != nil {
		t.Fatalf("click %s: %v", what, err)
	}
	return int(resp.Status)
}

// submit clicks the button data-test=name, which leads to another page;
// a page that comes with another status than 200 fails the test with
// what it says (error-message).
func (p *portal) submit(name, what string) {
	p.t.Helper()
	if code := clickForPage(p.t, p.b, browsertest.Sel(name), name); code != 200 {
		p.t.Fatalf("%s (%s) came with %d: %q; %s", what, name, code, p.text(one("error-message")), p.seenNow())
	}
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// one is a selector of the element data-test=name.
func one(name string) string { return fmt.Sprintf("[data-test=%s]", name) }

// eval evaluates expr in the page, failing the test if it cannot.
func (p *portal) eval(expr string) string {
	p.t.Helper()
	return evalJS[string](p.t, p.b, "read the page", expr)
}

// text is the trimmed text of the first element sel selects, or
// "<none>" if nothing matches.
func (p *portal) text(sel string) string {
	p.t.Helper()
	return p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.textContent.trim() : "<none>" })()`, js(sel)))
}

// count counts the elements sel selects.
func (p *portal) count(sel string) int {
	p.t.Helper()
	return evalJS[int](p.t, p.b, "count "+sel, fmt.Sprintf(`document.querySelectorAll(%s).length`, js(sel)))
}

// attrs are attribute attr of every element sel selects, in order.
func (p *portal) attrs(sel, attr string) []string {
	p.t.Helper()
	return evalJS[[]string](p.t, p.b, "read "+sel, fmt.Sprintf(`[...document.querySelectorAll(%s)].map(e => e.getAttribute(%s))`, js(sel), js(attr)))
}

// texts are the trimmed texts of every element sel selects, in
// order.
func (p *portal) texts(sel string) []string {
	p.t.Helper()
	return evalJS[[]string](p.t, p.b, "read "+sel, fmt.Sprintf(`[...document.querySelectorAll(%s)].map(e => e.textContent.trim())`, js(sel)))
}

// shows reports whether the element data-test=name is on the page and
// not hidden.
func (p *portal) shows(name string) bool {
	p.t.Helper()
	return evalJS[bool](p.t, p.b, "look for "+name, fmt.Sprintf(`(() => { const e = document.querySelector(%s);
		return e !== null && !e.hidden && e.getClientRects().length > 0 })()`, js(one(name))))
}

// seenNow describes what the browser shows, for a failure's message.
func (p *portal) seenNow() string {
	ctx, cancel := context.WithTimeout(p.b.Context(), 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " reads " + JSON.stringify(document.body ? document.body.innerText.slice(0, 400) : "")`))
	if err != nil {
		return fmt.Sprintf("(the page cannot be read: %v)", err)
	}
	return s
}

// until waits up to timeout for the expression, a string, to be "ok";
// "" means not yet, and anything else fails the test at once with that
// text (a failure the page shows: no use waiting on).
func (p *portal) until(timeout time.Duration, what, expr string) {
	p.t.Helper()
	if err := p.poll(timeout, what, expr); err != nil {
		p.t.Fatal(err)
	}
}

// shown is until for what the page shows without loading again: if it
// does not within timeout, the test fails (not at once), and the page is
// loaded again, which must show it.
func (p *portal) shown(timeout time.Duration, what, expr string) {
	p.t.Helper()
	err := p.poll(timeout, what, expr)
	if err == nil {
		return
	}
	p.t.Errorf("%v: the page did not show it live; loading it again", err)
	ctx, cancel := context.WithTimeout(p.b.Context(), time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		p.t.Fatalf("reload the page: %v", err)
	}
	p.until(30*time.Second, what+" (after loading the page again)", expr)
}

// poll is until's wait; it answers what failed, with what the browser
// shows.
func (p *portal) poll(timeout time.Duration, what, expr string) error {
	p.t.Helper()
	var stop string
	err := labsite.Poll(p.t.Context(), timeout, func() error {
		ctx, cancel := context.WithTimeout(p.b.Context(), 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		switch {
		case err != nil:
			return err // a navigation under way: ask again
		case v == "ok":
			return nil
		case v == "":
			return errors.New("not yet")
		default:
			stop = v
			return nil
		}
	})
	if stop != "" {
		p.t.Fatalf("waiting for %s: %s; %s", what, stop, p.seenNow())
	}
	if err != nil {
		return fmt.Errorf("waiting for %s: %v; %s", what, err, p.seenNow())
	}
	return nil
}

// expect waits until the page at path (a prefix, if it ends with "/")
// shows the element data-test=name: it is the page it should be.
func (p *portal) expect(page, path, name string) {
	p.t.Helper()
	match := fmt.Sprintf(`location.pathname === %s`, js(path))
	if path[len(path)-1] == '/' && path != "/" {
		match = fmt.Sprintf(`location.pathname.startsWith(%s)`, js(path))
	}
	p.until(30*time.Second, "the portal's "+page+" (data-test="+name+" at "+path+")",
		fmt.Sprintf(`(%s && document.querySelector(%s) !== null) ? "ok" : ""`, match, js(one(name))))
}

// open loads path, which must come with 200 and be page (it shows
// data-test=name).
func (p *portal) open(page, path, name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.Context(), time.Minute)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(p.url+path))
	if err != nil {
		p.t.Fatalf("the portal's %s: GET %s: %v", page, path, err)
	}
	if resp.Status != 200 {
		p.t.Fatalf("the portal's %s: GET %s came with %d %s, not the page; %s", page, path, resp.Status, resp.StatusText, p.seenNow())
	}
	p.expect(page, path, name)
}

// set gives the form field data-test=name value: a select's option
// (which must exist), or an input's text.
func (p *portal) set(name, value string) {
	p.t.Helper()
	kind := p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s);
		if (e === null) return "missing";
		if (e.tagName !== "SELECT") return "input";
		const opts = [...e.options].map(o => o.value);
		if (!opts.includes(%s)) return "no option " + %s + " among " + opts.join(", ");
		e.value = %s;
		e.dispatchEvent(new Event("change", {bubbles: true}));
		return "set" })()`, js(one(name)), js(value), js(value), js(value)))
	switch kind {
	case "set":
	case "input":
		p.b.Fill(name, value)
	default:
		p.t.Fatalf("set %s to %q: %s; %s", name, value, kind, p.seenNow())
	}
}

// mark marks the document: the mark is gone if the page loads again.
func (p *portal) mark() { evalJS[bool](p.t, p.b, "mark the page", `window.outpostMark = true`) }

// marked reports whether the document marked last is still the one
// shown.
func (p *portal) marked() bool {
	return evalJS[bool](p.t, p.b, "read the mark", `window.outpostMark === true`)
}

// record starts recording, every 100 ms and until the page loads again,
// each change of the text of the elements data-test=names (all of a
// name's, joined by " | "), and the text of every timeline row that
// comes after it started; seen returns what it recorded. It marks the
// page too.
func (p *portal) record(names ...string) {
	p.t.Helper()
	list, _ := json.Marshal(names)
	p.eval(fmt.Sprintf(`(() => {
		const names = %s, seen = {"new-event-rows": []};
		for (const n of names) seen[n] = [];
		const norm = e => e.textContent.trim().replace(/\s+/g, " ");
		const before = new Set([...document.querySelectorAll("[data-test=event-row]")].map(norm));
		const read = () => {
			for (const n of names) {
				const t = [...document.querySelectorAll("[data-test=" + n + "]")].map(norm).join(" | ");
				const a = seen[n];
				if (a.length === 0 || a[a.length - 1] !== t) a.push(t);
			}
			for (const r of document.querySelectorAll("[data-test=event-row]")) {
				const t = norm(r);
				if (!before.has(t) && !seen["new-event-rows"].includes(t)) seen["new-event-rows"].push(t);
			}
		};
		read();
		window.outpostSeen = seen;
		window.outpostMark = true;
		setInterval(read, 100);
		return "recording";
	})()`, list))
}

// seen is what record recorded, by data-test name.
func (p *portal) seen() map[string][]string {
	p.t.Helper()
	return evalJS[map[string][]string](p.t, p.b, "read what the page showed", `window.outpostSeen || {}`)
}

// signIn signs in with token at the sign-in page (GET /), the portal's
// first page, and waits until the page says who is signed in.
func (p *portal) signIn(token, name, role string) {
	p.t.Helper()
	p.open("sign-in page", "/", "signin-form")
	p.b.Fill("signin-token", token)
	p.submit("signin-submit", "signing in")
	p.until(30*time.Second, "signed in as "+name,
		fmt.Sprintf(`(() => { const e = document.querySelector(%s), err = document.querySelector(%s);
			if (err && !err.hidden && err.textContent.trim() !== "") return "the sign-in page says " + err.textContent.trim();
			return e && e.textContent.includes(%s) && e.textContent.includes(%s) ? "ok" : "" })()`,
			js(one("signed-in-as")), js(one("signin-error")), js(name), js(role)))
}

// signOut signs out, back to the sign-in page.
func (p *portal) signOut() {
	p.t.Helper()
	clickToPage(p.t, p.b, "sign-out")
	p.expect("sign-in page after signing out", "/", "signin-form")
}

// fleetPage is the fleet overview, GET /fleet.
type fleetPage struct{ p *portal }

// fleet goes to the fleet overview through the navigation.
func (p *portal) fleet() fleetPage {
	p.t.Helper()
	p.follow("nav-fleet", "fleet overview", "/fleet", "sites-table")
	return fleetPage{p}
}

// follow clicks the navigation's link nav and waits for page at path
// (it shows data-test=name).
func (p *portal) follow(nav, page, path, name string) {
	p.t.Helper()
	clickToPage(p.t, p.b, nav)
	p.expect(page, path, name)
}

// linkStateOf selects the element saying site's link state.
func linkStateOf(site string) string {
	return fmt.Sprintf(`[data-test=site-row][data-site=%s] [data-test=link-state]`, js(site))
}

// linkState is what the overview says of site's link: "connected" or
// "offline".
func (f fleetPage) linkState(site string) string {
	f.p.t.Helper()
	return f.p.text(linkStateOf(site))
}

// waitLinkState waits until the overview says site's link is want,
// without loading again (shown).
func (f fleetPage) waitLinkState(site, want string, timeout time.Duration) {
	f.p.t.Helper()
	f.p.shown(timeout, fmt.Sprintf("the fleet overview to show %s %s", site, want), fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		return e && e.textContent.trim() === %s ? "ok" : "" })()`,
		js(linkStateOf(site)), js(want)))
}

// machinesPage is the machines across sites, GET /machines.
type machinesPage struct{ p *portal }

// machines goes to the machines page through the navigation.
func (p *portal) machines() machinesPage {
	p.t.Helper()
	p.follow("nav-machines", "machines page", "/machines", "machine-filter")
	return machinesPage{p}
}

// filter searches the fleet with q; the portal must take it.
func (m machinesPage) filter(q string) {
	m.p.t.Helper()
	m.p.b.Fill("filter-q", q)
	if code := clickForPage(m.p.t, m.p.b, browsertest.Sel("filter-submit"), "filter-submit"); code != 200 {
		m.p.t.Fatalf("the portal refused the filter %q with %d: %q; %s", q, code, m.p.text(one("filter-error")), m.p.seenNow())
	}
	m.p.until(30*time.Second, "the machines matching "+q, fmt.Sprintf(`(() => {
		const err = document.querySelector(%s);
		if (err && !err.hidden && err.textContent.trim() !== "") return "the portal refused the filter: " + err.textContent.trim();
		return location.pathname === "/machines" && new URLSearchParams(location.search).get("q") === %s &&
			document.querySelector(%s) !== null ? "ok" : "" })()`, js(one("filter-error")), js(q), js(one("machine-count"))))
}

// rows are the machines listed, as "site/id".
func (m machinesPage) rows() []string {
	m.p.t.Helper()
	return m.p.attrs(one("machine-row"), "data-machine")
}

// total is what the page says of how many machines match.
func (m machinesPage) total() string {
	m.p.t.Helper()
	return m.p.text(one("machine-count"))
}

// open follows machine's link ("site/id") to its page.
func (m machinesPage) open(machine string) machinePage {
	m.p.t.Helper()
	sel := fmt.Sprintf(`[data-test=machine-row][data-machine=%s] [data-test=machine-link]`, js(machine))
	clickSelToPage(m.p.t, m.p.b, chromedp.CSS(sel), "the link of "+machine)
	m.p.expect("page of "+machine, "/machines/"+machine, "machine-state")
	return machinePage{m.p}
}

// bulk orders action (provision, deprovision, power-on, power-off,
// power-cycle) for every machine the filter matched, up to the preview.
func (m machinesPage) bulk(action string) previewPage {
	m.p.t.Helper()
	m.p.set("bulk-action", action)
	m.p.submit("bulk-submit", "the bulk order form")
	return m.p.preview()
}

// machinePage is one machine's page, GET /machines/{site}/{id}.
type machinePage struct{ p *portal }

// machine opens machine's page ("site/id") by its address.
func (p *portal) machine(machine string) machinePage {
	p.t.Helper()
	p.open("page of "+machine, "/machines/"+machine, "machine-state")
	return machinePage{p}
}

// orderForm is what the machine page's order form is given; empty
// fields are left as they are.
type orderForm struct {
	action, image, template, hostname string
}

// order fills the order form and submits it, up to the preview.
func (m machinePage) order(f orderForm) previewPage {
	m.p.t.Helper()
	if m.p.count(one("order-form")) == 0 {
		m.p.t.Fatalf("the machine page has no order form for the operator; %s", m.p.seenNow())
	}
	m.p.set("order-action", f.action)
	for name, v := range map[string]string{"order-image": f.image, "order-template": f.template, "order-hostname": f.hostname} {
		if v != "" {
			m.p.set(name, v)
		}
	}
	m.p.submit("order-submit", "the order form")
	return m.p.preview()
}

// previewPage is an order's preview, which asks for a confirmation
// (POST /orders/preview).
type previewPage struct{ p *portal }

// preview waits for the preview page.
func (p *portal) preview() previewPage {
	p.t.Helper()
	p.until(30*time.Second, "the order's preview", fmt.Sprintf(`document.querySelector(%s) !== null ? "ok" :
		(document.querySelector(%s) ? "the portal says " + document.querySelector(%s).textContent.trim() : "")`,
		js(one("confirm-question")), js(one("error-message")), js(one("error-message"))))
	return previewPage{p}
}

// machines are the machines the preview says the order is for.
func (v previewPage) machines() []string {
	v.p.t.Helper()
	return v.p.attrs(one("confirm-machine"), "data-machine")
}

// offline reports whether the preview says the order will wait for an
// offline site.
func (v previewPage) offline() bool {
	v.p.t.Helper()
	return v.p.shows("confirm-offline")
}

// confirm confirms the order, which leads to its progress page.
func (v previewPage) confirm() orderPage {
	v.p.t.Helper()
	v.p.submit("confirm-yes", "the confirmation")
	v.p.expect("order's progress page", "/orders/", "order-results")
	return orderPage{v.p}
}

// orderPage is an order's (or a bulk order's) per-machine progress,
// GET /orders/{batch}.
type orderPage struct{ p *portal }

// status is the status of machine's ("site/id") result, once the page
// lists it (an order just placed may reach the fleet model a moment
// later, and the page then shows it live); "" if it does not within
// 30 s.
func (o orderPage) status(machine string) string {
	o.p.t.Helper()
	var st string
	err := labsite.Poll(o.p.t.Context(), 30*time.Second, func() error {
		st = o.p.text(fmt.Sprintf(`[data-test=result-row][data-machine=%s] [data-test=result-status]`, js(machine)))
		if st == "<none>" {
			return errors.New("not listed")
		}
		return nil
	})
	if err != nil {
		return ""
	}
	return st
}

// waitEnded waits until the page shows n results, every one ended
// with status want, without loading again (shown); a failed one fails
// the test at once.
func (o orderPage) waitEnded(n int, want string, timeout time.Duration) {
	o.p.t.Helper()
	o.p.shown(timeout, fmt.Sprintf("%d results %s", n, want), fmt.Sprintf(`(() => {
		const st = [...document.querySelectorAll("[data-test=result-row] [data-test=result-status]")].map(e => e.textContent.trim());
		const failed = st.filter(s => s === "failed").length;
		if (failed > 0) return failed + " results failed";
		const done = document.querySelector(%s), total = document.querySelector(%s);
		return st.length === %d && st.every(s => s === %s) && done && parseInt(done.textContent.trim(), 10) === %d &&
			total && parseInt(total.textContent.trim(), 10) === %d ? "ok" : "" })()`,
		js(one("results-done")), js(one("results-total")), n, js(want), n, n))
}
