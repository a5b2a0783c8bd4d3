package portal_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/portal"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/httpapi/routetest"
	"github.com/outposthq/outpost/internal/webui/webuitest"
)

// el is an element with a data-test attribute: its attributes and text.
type el struct {
	attr map[string]string
	text string
}

// elements are a page's elements by their data-test name.
func elements(t *testing.T, body string) map[string][]el {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]el{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		e := el{attr: map[string]string{}}
		for _, a := range n.Attr {
			e.attr[a.Key] = a.Val
		}
		if name := e.attr["data-test"]; name != "" {
			var b strings.Builder
			for c := range n.Descendants() {
				if c.Type == html.TextNode {
					b.WriteString(c.Data)
				}
			}
			e.text = strings.Join(strings.Fields(b.String()), " ")
			out[name] = append(out[name], e)
		}
	}
	return out
}

// attrs are the values of attribute a of the elements named name.
func attrs(els map[string][]el, name, a string) []string {
	var out []string
	for _, e := range els[name] {
		out = append(out, e.attr[a])
	}
	return out
}

// pages are every page of the portal, as a browser opens them.
var pages = []string{"/fleet", "/sites", "/machines", "/machines?q=state:failed&cols=macs", "/machines/eu1/m1",
	"/images", "/templates", "/templates?site=eu1", "/audit", "/orders/b1796623200-0001", "/charts", "/no-such-page"}

// TestPagesByRole: every page renders for each role with the navigation;
// only an operator sees the order forms, the upload and the audit (a
// viewer's is refused).
func TestPagesByRole(t *testing.T) {
	e := start(t)
	for _, role := range []string{"viewer", "operator", "admin"} {
		c, _ := e.signIn(t, role)
		for _, p := range pages {
			resp, body := e.Do(t, http.MethodGet, p, nil, nil, c)
			want := http.StatusOK
			switch {
			case p == "/no-such-page":
				want = http.StatusNotFound
			case p == "/audit" && role == "viewer":
				want = http.StatusForbidden
			}
			if resp.StatusCode != want {
				t.Errorf("%s GET %s: %d, want %d\n%s", role, p, resp.StatusCode, want, body)
				continue
			}
			if want == http.StatusForbidden {
				continue
			}
			els := elements(t, body)
			for _, name := range []string{"nav-fleet", "nav-machines", "nav-images", "nav-charts", "nav-audit", "signed-in-as", "sign-out", "disconnected"} {
				if n := len(els[name]); n != 1 && (name != "nav-audit" || role != "viewer") {
					t.Errorf("%s GET %s: %d %s", role, p, n, name)
				}
			}
			operates := role != "viewer"
			for _, form := range []string{"bulk-form", "order-form", "upload-form"} {
				if len(els[form]) > 0 && !operates {
					t.Errorf("%s GET %s shows %s", role, p, form)
				}
			}
			if !strings.Contains(els["signed-in-as"][0].text, role) {
				t.Errorf("%s GET %s: signed in as %q", role, p, els["signed-in-as"][0].text)
			}
		}
		_, body := e.Do(t, http.MethodGet, "/machines", nil, nil, c)
		if got := len(elements(t, body)["bulk-form"]) == 1; got != (role != "viewer") {
			t.Errorf("%s: the machines page shows the bulk form: %v", role, got)
		}
		_, body = e.Do(t, http.MethodGet, "/machines/eu1/m1", nil, nil, c)
		if got := len(elements(t, body)["order-form"]) == 1; got != (role != "viewer") {
			t.Errorf("%s: the machine page shows the order form: %v", role, got)
		}
	}
}

// TestSignIn: a wrong token is refused on the form; a good one goes to
// the fleet; a page without a session goes to the sign-in page, which
// comes back to it.
func TestSignIn(t *testing.T) {
	e := start(t)
	resp, body := e.Do(t, http.MethodPost, "/signin", url.Values{"token": {"nope"}}, e.Origin())
	if resp.StatusCode != http.StatusUnauthorized || len(elements(t, body)["signin-error"]) != 1 {
		t.Errorf("a wrong token: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = e.Do(t, http.MethodPost, "/signin", url.Values{"token": {"tok-viewer"}}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a sign-in without Origin: %d", resp.StatusCode)
	}
	resp, _ = e.Do(t, http.MethodGet, "/machines?q=state:failed", nil, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/?next="+url.QueryEscape("/machines?q=state:failed") {
		t.Errorf("a page without a session: %d to %q", resp.StatusCode, loc)
	}
	resp, _ = e.Do(t, http.MethodPost, "/signin", url.Values{"token": {"tok-viewer"}, "next": {"/machines?q=state:failed"}}, e.Origin())
	if loc := resp.Header.Get("Location"); loc != "/machines?q=state:failed" {
		t.Errorf("signed in to %q", loc)
	}
	c, _ := e.signIn(t, "viewer")
	resp, _ = e.Do(t, http.MethodGet, "/", nil, nil, c)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/fleet" {
		t.Errorf("the sign-in page signed in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := e.Do(t, http.MethodGet, "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s", h)
		}
	}
}

// TestForgedChanges: a change without the session's CSRF token or from
// another origin is refused, and a viewer's well-formed one too: nothing
// is placed.
func TestForgedChanges(t *testing.T) {
	e := start(t)
	cv, csrfV := e.signIn(t, "viewer")
	co, csrfO := e.signIn(t, "operator")
	confirm := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "action": {"power-cycle"}, "target": {"eu1/m1"}}
	}
	for name, tc := range map[string]struct {
		c      *http.Cookie
		path   string
		form   url.Values
		origin map[string]string
	}{
		"viewer's preview": {cv, "/orders/preview", confirm(csrfV), e.Origin()},
		"viewer's order":   {cv, "/orders", confirm(csrfV), e.Origin()},
		"no csrf":          {co, "/orders", confirm(""), e.Origin()},
		"wrong csrf":       {co, "/orders", confirm("x" + csrfO), e.Origin()},
		"other's csrf":     {co, "/orders", confirm(csrfV), e.Origin()},
		"other origin":     {co, "/orders", confirm(csrfO), map[string]string{"Origin": "http://evil.example"}},
		"no origin":        {co, "/orders", confirm(csrfO), nil},
		"viewer's upload":  {cv, "/v1/artifacts", nil, map[string]string{"Origin": e.URL, "X-CSRF-Token": csrfV}},
		"forged upload":    {co, "/v1/artifacts", nil, map[string]string{"Origin": "http://evil.example", "X-CSRF-Token": csrfO}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := e.Do(t, http.MethodPost, tc.path, tc.form, tc.origin, tc.c)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%d, want 403\n%s", resp.StatusCode, body)
			}
		})
	}
	if len(e.placer.placed) != 0 {
		t.Errorf("placed %d requests", len(e.placer.placed))
	}
	resp, _ := e.Do(t, http.MethodPost, "/orders", confirm(csrfO), e.Origin())
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an order without a session: %d", resp.StatusCode)
	}
}

// TestRoutes holds the portal's route table against the policy every
// console and API has: a viewer reads, an operator also changes (and
// reads the audit); the role is checked whatever a page shows.
func TestRoutes(t *testing.T) {
	e := start(t)
	for _, role := range []string{"viewer", "operator"} {
		c, csrf := e.signIn(t, role)
		rt := routetest.API{Routes: portal.Routes(),
			Send: func(t *testing.T, rt httpapi.Route, _ string) (int, string) {
				method, p := routetest.Request(rt, map[string]string{"site": "eu1", "id": "m1", "batch": "b1-1"})
				if rt.Method() == "" {
					p = "/no-such-page"
				}
				var form url.Values
				if method == http.MethodPost {
					form = url.Values{"csrf": {csrf}, "action": {"power-on"}, "target": {"eu1/m1"}}
				}
				resp, body := e.Do(t, method, p, form, e.Origin(), c)
				return resp.StatusCode, body
			},
			// The audit is an operator's read; a download needs its format.
			ReadAlso: func(rt httpapi.Route, code int) bool {
				return strings.Contains(rt.Pattern, "/audit") && (code == http.StatusForbidden || code == http.StatusBadRequest)
			}}
		if role == "viewer" {
			routetest.Viewer(t, rt, "")
		} else {
			routetest.Operator(t, rt, "")
		}
	}
}

// TestFilterError: a search the fleet cannot read answers 400 with the
// term at fault named and the query kept in its box.
func TestFilterError(t *testing.T) {
	e := start(t)
	c, _ := e.signIn(t, "operator")
	resp, body := e.Do(t, http.MethodGet, "/machines?q="+url.QueryEscape("state:failed colour:blue"), nil, nil, c)
	els := elements(t, body)
	if resp.StatusCode != http.StatusBadRequest || len(els["filter-error"]) != 1 || !strings.Contains(els["filter-error"][0].text, `"colour:blue"`) {
		t.Fatalf("%d %v", resp.StatusCode, els["filter-error"])
	}
	if got := attrs(els, "filter-q", "value"); !slices.Equal(got, []string{"state:failed colour:blue"}) {
		t.Errorf("the box holds %q", got)
	}
	if len(els["machine-row"]) != 0 || len(els["bulk-form"]) != 0 {
		t.Error("a search not understood shows machines or the bulk form")
	}
}

// TestMachines: the search's machines with their count, the columns
// chosen, and the site and id always.
func TestMachines(t *testing.T) {
	e := start(t)
	c, _ := e.signIn(t, "viewer")
	_, body := e.Do(t, http.MethodGet, "/machines?q=state:failed&cols=macs&cols=tags,hostname", nil, nil, c)
	els := elements(t, body)
	if got := attrs(els, "machine-row", "data-machine"); !slices.Equal(got, []string{"eu1/m4", "us1/m1"}) {
		t.Errorf("rows %q", got)
	}
	if els["machine-count"][0].text != "2" {
		t.Errorf("count %q", els["machine-count"][0].text)
	}
	var checked []string
	for name, es := range els {
		if strings.HasPrefix(name, "column-") {
			if _, on := es[0].attr["checked"]; on {
				checked = append(checked, strings.TrimPrefix(name, "column-"))
			}
		}
	}
	slices.Sort(checked)
	if !slices.Equal(checked, []string{"hostname", "macs", "tags"}) {
		t.Errorf("columns checked %q", checked)
	}
	if len(els["machine-state"]) != 0 {
		t.Error("the state column is shown though not chosen")
	}
	_, body = e.Do(t, http.MethodGet, "/machines", nil, nil, c)
	if got := elements(t, body)["machine-state"]; len(got) != 5 || got[0].text != "ready" {
		t.Errorf("default columns: states %v", got)
	}
}

// TestBulkPreviewConfirm: the bulk form's preview names every machine the
// search matches and what will happen; the confirmation places exactly
// the previewed machines (not one that matches by then, not the one the
// preview refused), as the signed-in token; its results page shows each
// machine's order, and the machines at an offline site say they wait.
func TestBulkPreviewConfirm(t *testing.T) {
	e := start(t)
	c, csrf := e.signIn(t, "operator")
	resp, body := e.Do(t, http.MethodPost, "/orders/preview",
		url.Values{"csrf": {csrf}, "q": {"state:failed"}, "action": {"power-cycle"}}, e.Origin(), c)
	els := elements(t, body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(els["confirm-question"][0].text, "Power-cycle 1 machine?") {
		t.Fatalf("%d %v\n%s", resp.StatusCode, els["confirm-question"], body)
	}
	if got := attrs(els, "confirm-machine", "data-machine"); !slices.Equal(got, []string{"eu1/m4", "us1/m1"}) {
		t.Errorf("preview %q", got)
	}
	if len(els["confirm-offline"]) != 1 || !strings.Contains(els["confirm-offline"][0].text, "delivered when the site returns") {
		t.Errorf("offline %v", els["confirm-offline"])
	}
	// The fleet changes between the preview and the confirmation.
	e.fleet.change(func() { e.fleet.machines["eu1/m1"].State = "failed" })
	form := confirmForm(t, body)
	resp, _ = e.Do(t, http.MethodPost, "/orders", form, e.Origin(), c)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/orders/b1796623200-0001" {
		t.Fatalf("confirm: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	want := &orders.Request{Action: "power", Params: orders.OrderParams{Power: "cycle"},
		Targets: []orders.TargetRef{{Site: "us1", Machine: "m1"}}}
	if diff := cmp.Diff([]*orders.Request{want}, e.placer.placed); diff != "" || e.placer.by[0] != "olga" {
		t.Errorf("placed (-want +got):\n%s by %q", diff, e.placer.by)
	}
	_, body = e.Do(t, http.MethodGet, "/orders/b1796623200-0001", nil, nil, c)
	els = elements(t, body)
	if got := attrs(els, "result-row", "data-machine"); !slices.Equal(got, []string{"us1/m1"}) || els["result-status"][0].text != "waiting" ||
		els["results-total"][0].text != "1" || els["results-done"][0].text != "0" {
		t.Errorf("results %q %v", got, els["result-status"])
	}
	e.fleet.setStatus("b1796623200-0001", "succeeded")
	_, body = e.Do(t, http.MethodGet, "/orders/b1796623200-0001", nil, nil, c)
	if els = elements(t, body); els["results-done"][0].text != "1" || els["result-status"][0].text != "succeeded" {
		t.Errorf("results %v %v", els["results-done"], els["result-status"])
	}
}

// confirmForm is the form the preview page's confirmation posts.
func confirmForm(t *testing.T, body string) url.Values {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "input" {
			continue
		}
		var name, value string
		for _, a := range n.Attr {
			switch a.Key {
			case "name":
				name = a.Val
			case "value":
				value = a.Val
			}
		}
		form.Add(name, value)
	}
	return form
}

// TestProvisionOne: the machine page's order form previews one machine's
// provision with its image, template, hostname, keys and user data, and
// the confirmation carries them all.
func TestProvisionOne(t *testing.T) {
	e := start(t)
	c, csrf := e.signIn(t, "operator")
	_, body := e.Do(t, http.MethodGet, "/machines/eu1/m1", nil, nil, c)
	els := elements(t, body)
	if got := attrs(els, "site-console-link", "href"); !slices.Equal(got, []string{"https://eu1.example.test:8443/machines/m1"}) {
		t.Errorf("console link %q", got)
	}
	if els["event-by"][0].text != "alice" || els["machine-site"][0].text != "eu1" {
		t.Errorf("timeline by %v, site %v", els["event-by"], els["machine-site"])
	}
	if !strings.Contains(body, `<option value="debian-12">`) || !strings.Contains(body, `<option value="raw">`) {
		t.Error("the form lists no catalogue image or template")
	}
	form := url.Values{"csrf": {csrf}, "target": {"eu1/m1"}, "action": {"provision"}, "image": {"debian-12"}, "template": {"raw"},
		"hostname": {"web1.eu"}, "ssh_keys": {"ssh-ed25519 AAAA one\r\n\r\nssh-ed25519 BBBB two\r\n"}, "user_data": {"#cloud-config\n"}}
	_, body = e.Do(t, http.MethodPost, "/orders/preview", form, e.Origin(), c)
	resp, _ := e.Do(t, http.MethodPost, "/orders", confirmForm(t, body), e.Origin(), c)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	want := &orders.Request{Action: "provision", Targets: []orders.TargetRef{{Site: "eu1", Machine: "m1"}},
		Params: orders.OrderParams{Image: "debian-12", Template: "raw", Hostname: "web1.eu",
			SSHKeys: []string{"ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"}, UserData: "#cloud-config\n"}}
	if diff := cmp.Diff([]*orders.Request{want}, e.placer.placed); diff != "" {
		t.Errorf("placed (-want +got):\n%s", diff)
	}
}

// TestOverview: the sites with their link and what is behind, the
// machines by state, the orders in flight and the failures by reason.
func TestOverview(t *testing.T) {
	e := start(t)
	c, csrf := e.signIn(t, "operator")
	e.Do(t, http.MethodPost, "/orders", url.Values{"csrf": {csrf}, "action": {"power-cycle"}, "target": {"eu1/m2"}}, e.Origin(), c)
	_, body := e.Do(t, http.MethodGet, "/fleet", nil, nil, c)
	els := elements(t, body)
	if got := attrs(els, "site-row", "data-site"); !slices.Equal(got, []string{"eu1", "us1"}) {
		t.Errorf("sites %q", got)
	}
	var links []string
	for _, l := range els["link-state"] {
		links = append(links, l.text)
	}
	if !slices.Equal(links, []string{"connected", "offline"}) || !strings.Contains(els["site-behind"][1].text, "12 events") {
		t.Errorf("links %q, behind %v", links, els["site-behind"])
	}
	if els["state-failed"][0].text != "2" || els["state-ready"][0].text != "3" {
		t.Errorf("by state %v %v", els["state-failed"], els["state-ready"])
	}
	if got := attrs(els, "flight-row", "data-machine"); !slices.Equal(got, []string{"eu1/m2"}) || els["flight-step"][0].text != "placed" {
		t.Errorf("in flight %q %v", got, els["flight-step"])
	}
	if els["failure-reason"][0].text != "disk.wipe failed" || els["failure-count"][0].text != "2" {
		t.Errorf("failures %v %v", els["failure-reason"], els["failure-count"])
	}
}

// TestImagesTemplatesAudit: the catalogue with its holders, the sites'
// templates, the audit and its downloads.
func TestImagesTemplatesAudit(t *testing.T) {
	e := start(t)
	c, _ := e.signIn(t, "operator")
	_, body := e.Do(t, http.MethodGet, "/images", nil, nil, c)
	els := elements(t, body)
	if got := attrs(els, "image-row", "data-image"); !slices.Equal(got, []string{"debian-12"}) ||
		els["image-holders"][0].text != "eu1 us1 (pending)" || !strings.Contains(els["image-digest"][0].text, "sha256:abababababab") {
		t.Errorf("catalogue %q %v %v", got, els["image-holders"], els["image-digest"])
	}
	if len(els["upload-form"]) != 1 || len(els["upload-progress"]) != 1 {
		t.Error("no upload form")
	}
	_, body = e.Do(t, http.MethodGet, "/templates", nil, nil, c)
	if got := attrs(elements(t, body), "template-row", "data-template"); !slices.Equal(got, []string{"eu1/raw"}) {
		t.Errorf("templates %q", got)
	}
	_, body = e.Do(t, http.MethodGet, "/audit?by=olga", nil, nil, c)
	els = elements(t, body)
	if len(els["audit-row"]) != 1 || !strings.Contains(els["audit-row"][0].text, "order.place") {
		t.Errorf("audit %v", els["audit-row"])
	}
	if got := attrs(els, "download-csv", "href"); !slices.Equal(got, []string{"/audit/download?by=olga&format=csv"}) {
		t.Errorf("download %q", got)
	}
	resp, body := e.Do(t, http.MethodGet, "/audit/download?format=csv", nil, nil, c)
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 3 || rows[1][2] != "olga" || !strings.Contains(resp.Header.Get("Content-Disposition"), "outpost-audit.csv") {
		t.Errorf("csv %v %v", rows, err)
	}
	_, body = e.Do(t, http.MethodGet, "/audit/download?format=jsonl&action=site.create", nil, nil, c)
	if lines := strings.Split(strings.TrimSpace(body), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"by":"ada"`) {
		t.Errorf("jsonl %q", body)
	}
	resp, body = e.Do(t, http.MethodGet, "/audit?since=yesterday", nil, nil, c)
	if resp.StatusCode != http.StatusBadRequest || len(elements(t, body)["filter-error"]) != 1 {
		t.Errorf("a bad since: %d", resp.StatusCode)
	}
}

// TestNoExternalURL parses every page and asset the portal serves and
// finds no URL outside central.
func TestNoExternalURL(t *testing.T) {
	e := start(t)
	c, _ := e.signIn(t, "operator")
	var assets []string
	for _, p := range append(slices.Clone(pages), "/") {
		cookies := []*http.Cookie{c}
		if p == "/" {
			cookies = nil
		}
		_, body := e.Do(t, http.MethodGet, p, nil, nil, cookies...)
		assets = append(assets, webuitest.CheckPage(t, p, body)...)
	}
	seen := map[string]bool{}
	for _, a := range assets {
		if seen[a] || !strings.HasPrefix(a, "/assets/") {
			continue
		}
		seen[a] = true
		resp, body := e.Do(t, http.MethodGet, a, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", a, resp.StatusCode)
		}
		webuitest.CheckAsset(t, a, body)
	}
	for _, want := range []string{"/assets/vendor/htmx.min.js", "/assets/outpost.js", "/assets/outpost.css", "/assets/upload.js"} {
		if !seen[want] {
			t.Errorf("no page loads %s", want)
		}
	}
}
