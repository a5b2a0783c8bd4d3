package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/browsertest"
)

func fixtureLayout(body string) string {
	return `<!doctype html><html><body><nav><a data-test=nav-fleet href=/fleet>Fleet</a> <a data-test=nav-machines href=/machines>Machines</a>
<span data-test=signed-in-as>ops-olga (operator)</span><form method=post action=/signout><input type=hidden name=csrf value=tok1><button data-test=sign-out>Sign out</button></form></nav><main>` + body + `</main></body></html>`
}

func fixtureServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	w200 := func(w http.ResponseWriter, s string) { w.Header().Set("Content-Type", "text/html"); fmt.Fprint(w, s) }
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w200(w, `<!doctype html><html><body><form data-test=signin-form method=post action=/signin><input data-test=signin-token name=token><button data-test=signin-submit>Sign in</button></form><p data-test=signin-error hidden></p></body></html>`)
	})
	mux.HandleFunc("POST /signin", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fleet", http.StatusSeeOther) })
	mux.HandleFunc("POST /signout", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/", http.StatusSeeOther) })
	mux.HandleFunc("GET /fleet", func(w http.ResponseWriter, r *http.Request) {
		w200(w, fixtureLayout(`<table data-test=sites-table><tr data-test=site-row data-site=lab-b><td data-test=link-state>connected</td></tr></table>
<script>setTimeout(() => document.querySelector("[data-test=link-state]").textContent = "offline", 1500)</script>`))
	})
	mux.HandleFunc("GET /machines", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		var rows []string
		switch {
		case strings.HasPrefix(q, "mac:"):
			rows = []string{"lab-a/vm1"}
		case strings.HasPrefix(q, "site:lab-b"):
			rows = []string{"lab-b/b-01"}
		case q == "tag:sim":
			for _, p := range []string{"a", "b"} {
				for i := 1; i <= 25; i++ {
					rows = append(rows, fmt.Sprintf("lab-%s/%s-%02d", p, p, i))
				}
			}
		}
		var b strings.Builder
		for _, m := range rows {
			fmt.Fprintf(&b, `<tr data-test=machine-row data-machine=%q><td data-test=machine-state>ready</td><td><a data-test=machine-link href="/machines/%s">%s</a></td></tr>`, m, m, m)
		}
		w200(w, fixtureLayout(fmt.Sprintf(`<form data-test=machine-filter method=get action=/machines><input data-test=filter-q name=q><button data-test=filter-submit>Filter</button></form>
<p data-test=machine-count>%d machines</p><table data-test=machine-table>%s</table>
<form data-test=bulk-form method=post action=/orders/preview><input type=hidden name=q value=%q><input type=hidden name=csrf value=tok1><select data-test=bulk-action name=action><option value=power-on>on</option><option value=power-cycle>cycle</option></select><button data-test=bulk-submit>Order</button></form>`, len(rows), b.String(), q)))
	})
	mux.HandleFunc("GET /machines/{site}/{id}", func(w http.ResponseWriter, r *http.Request) {
		m := r.PathValue("site") + "/" + r.PathValue("id")
		w200(w, fixtureLayout(fmt.Sprintf(`<p data-test=machine-state>ready</p><p data-test=machine-site>%s</p><a data-test=site-console-link href="https://x/">console</a>
<p data-test=order-status>delivered</p><div data-test=workflow><span data-test=workflow-step></span><span data-test=workflow-progress></span></div>
<table data-test=timeline><tr data-test=event-row><td>old</td></tr></table>
<form data-test=order-form method=post action=/orders/preview><input type=hidden name=target value=%q><input type=hidden name=csrf value=tok1>
<select data-test=order-action name=action><option value=provision>provision</option><option value=power-on>power on</option></select>
<input data-test=order-image name=image><input data-test=order-template name=template><input data-test=order-hostname name=hostname><button data-test=order-submit>Preview</button></form>
<script>
const set = (n, v) => document.querySelector("[data-test=" + n + "]").textContent = v;
const row = v => { const r = document.createElement("tr"); r.setAttribute("data-test", "event-row"); r.innerHTML = "<td>" + v + "</td>"; document.querySelector("[data-test=timeline]").append(r) };
setTimeout(() => { set("order-status", "running"); set("workflow-step", "wipe"); row("action.running wipe") }, 700);
setTimeout(() => { set("workflow-step", "write"); row("action.running write"); row("action.running configure"); row("action.running reboot") }, 1400);
setTimeout(() => { set("machine-state", "provisioned"); set("order-status", "succeeded") }, 2100);
</script>`, m, m)))
	})
	mux.HandleFunc("POST /orders/preview", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.PostForm.Get("csrf") == "" {
			http.Error(w, "no", 403)
			return
		}
		var targets []string
		if t := r.PostForm.Get("target"); t != "" {
			targets = []string{t}
		} else {
			for _, p := range []string{"a", "b"} {
				for i := 1; i <= 25; i++ {
					targets = append(targets, fmt.Sprintf("lab-%s/%s-%02d", p, p, i))
				}
			}
		}
		var b strings.Builder
		offline := ""
		for _, m := range targets {
			fmt.Fprintf(&b, `<li data-test=confirm-machine data-machine=%q>%s</li>`, m, m)
			if strings.HasPrefix(m, "lab-b/b-01") {
				offline = `<p data-test=confirm-offline>will wait</p>`
			}
		}
		w200(w, fixtureLayout(fmt.Sprintf(`<p data-test=confirm-question>Do it?</p><ul data-test=confirm-machines>%s</ul>%s
<form method=post action=/orders><input type=hidden name=csrf value=tok1><input type=hidden name=n value=%d><button data-test=confirm-yes>Yes</button></form><a data-test=confirm-no href=/machines>No</a>`, b.String(), offline, len(targets))))
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.PostForm.Get("csrf") == "" || r.PostForm.Get("n") == "" {
			http.Error(w, "no", 403)
			return
		}
		http.Redirect(w, r, "/orders/b1-"+r.PostForm.Get("n"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /orders/{batch}", func(w http.ResponseWriter, r *http.Request) {
		n := 1
		fmt.Sscanf(strings.TrimPrefix(r.PathValue("batch"), "b1-"), "%d", &n)
		var b strings.Builder
		for i := 0; i < n; i++ {
			m := fmt.Sprintf("lab-x/m-%02d", i)
			if n == 1 {
				m = "lab-b/b-01"
			}
			fmt.Fprintf(&b, `<tr data-test=result-row data-machine=%q><td data-test=result-status>placed</td></tr>`, m)
		}
		w200(w, fixtureLayout(fmt.Sprintf(`<table data-test=order-results>%s</table><p><span data-test=results-done>0</span>/<span data-test=results-total>%d</span></p>
<script>setTimeout(() => { for (const e of document.querySelectorAll("[data-test=result-status]")) e.textContent = "delivered" }, 1500);
setTimeout(() => { for (const e of document.querySelectorAll("[data-test=result-status]")) e.textContent = "succeeded"; document.querySelector("[data-test=results-done]").textContent = "%d" }, 2500);</script>`, b.String(), n, n)))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestPortalFixtureScratch(t *testing.T) {
	srv := fixtureServer(t)
	b := browsertest.Start(t, browsertest.Allow(srv.URL))
	p := &portal{t: t, b: b, url: srv.URL}
	p.signIn("tok", "ops-olga", "operator")
	f := p.fleet()
	t.Logf("link %q", f.linkState("lab-b"))
	p.mark()
	f.waitLinkState("lab-b", "offline", 10*time.Second)
	t.Logf("marked %v", p.marked())
	m := p.machines()
	m.filter("mac:52:54:00:9a:00:01")
	t.Logf("rows %v total %q", m.rows(), m.total())
	page := m.open("lab-a/vm1")
	t.Logf("site %q console %v", p.text(one("machine-site")), p.attrs(one("site-console-link"), "href"))
	pv := page.order(orderForm{action: "provision", image: "testos", template: "install-testos", hostname: "h1"})
	t.Logf("preview %v offline %v", pv.machines(), pv.offline())
	op := pv.confirm()
	t.Logf("statuses %v", op.status("lab-b/b-01"))
	p.machine("lab-a/vm1")
	p.record("order-status", "workflow-step", "workflow-progress", "machine-state")
	p.until(10*time.Second, "prov", fmt.Sprintf(`(() => {
		const st = document.querySelector(%s), os = document.querySelector(%s);
		if (os && os.textContent.includes("failed")) return "the order failed: " + os.textContent.trim();
		return st && st.textContent.trim() === "provisioned" && os && os.textContent.includes("succeeded") ? "ok" : "" })()`,
		js(one("machine-state")), js(one("order-status"))))
	t.Logf("marked %v", p.marked())
	checkSeenLive(t, p.seen())

	m = p.machines()
	m.filter("site:lab-b id:b-01")
	pv = m.open("lab-b/b-01").order(orderForm{action: "power-on"})
	t.Logf("offline %v", pv.offline())
	op = pv.confirm()
	p.record("result-status")
	t.Logf("statuses %v", op.status("lab-b/b-01"))
	op.waitEnded(1, "succeeded", 10*time.Second)
	t.Logf("seen %v marked %v", p.seen(), p.marked())

	m = p.machines()
	m.filter("tag:sim")
	t.Logf("total %q", m.total())
	pv = m.bulk("power-cycle")
	t.Logf("bulk preview %d", len(pv.machines()))
	op = pv.confirm()
	op.waitEnded(50, "succeeded", 10*time.Second)
	for _, with := range []bool{true, false} {
		for _, path := range []string{"/orders/preview", "/orders"} {
			t.Logf("forged %s csrf=%v: %d", path, with, evalJS[int](t, p.b, "POST", forgedPost(path, with)))
		}
	}
	const postForms = `[...document.querySelectorAll("form")].filter(f => f.method.toLowerCase() === "post" && !new URL(f.action).pathname.endsWith("/signout")).length`
	t.Logf("post forms %d", evalJS[int](t, p.b, "count the forms", postForms))
	p.signOut()
	p.signIn("tok", "ops-olga", "operator")
	t.Logf("foreign %v", p.b.Foreign(srv.URL))
}
