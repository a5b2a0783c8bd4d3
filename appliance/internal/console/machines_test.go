package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// searchFleet stores four machines through a real node's proposer, each
// with a BMC: web-01 and web-02 (tag web, web-02 failed and tagged gpu),
// db-01 with a reserved address, spare-01 discovered.
func searchFleet(t *testing.T, e *env) {
	t.Helper()
	for i, spec := range []struct {
		id, host, ip string
		state        store.MachineState
		tags         []string
	}{
		{"m1", "web-01", "", store.StateReady, []string{"web"}},
		{"m2", "web-02", "", store.StateFailed, []string{"web", "gpu"}},
		{"m3", "db-01", "198.18.7.20", store.StateReady, []string{"db"}},
		{"m4", "spare-01", "", store.StateDiscovered, nil},
	} {
		m := apptest.Machine(spec.id, 0xa0+i)
		m.Hostname, m.State, m.Tags = spec.host, spec.state, spec.tags
		m.Interfaces[0].IP = spec.ip
		m.BMC = &store.BMC{Address: "127.0.0.1:1", Username: "admin", Password: "pw"}
		if _, err := e.n.Site.PutMachine(t.Context(), m, 0); err != nil {
			t.Fatal(err)
		}
	}
}

var rowRE = regexp.MustCompile(`data-test="machine-row" data-machine="([^"]+)"`)

// TestMachinesSearch: the machines page's one search box takes the
// grammar of GET /v1/machines?q= (MAC, IP, hostname, state, tags,
// negation); a query it cannot read answers 400 naming the term, with
// the query kept in the box and no rows.
func TestMachinesSearch(t *testing.T) {
	e := start(t, false)
	searchFleet(t, e)
	c, _ := e.signIn(t, e.token(t, "tech", "viewer", "1h"))
	for q, want := range map[string][]string{
		"":                       {"m1", "m2", "m3", "m4"},
		"mac:02:00:00:00:00:a1":  {"m2"},
		"02:00:00:00:00:a3":      {"m4"},
		"ip:198.18.7.0/24":       {"m3"},
		"hostname:web-*":         {"m1", "m2"},
		"web-02":                 {"m2"},
		"state:failed":           {"m2"},
		"state:ready,discovered": {"m1", "m3", "m4"},
		"tag:web -tag:gpu":       {"m1"},
		"!state:ready":           {"m2", "m4"},
		"tag:none-such":          nil,
	} {
		resp, body := e.do(t, http.MethodGet, "/machines?q="+url.QueryEscape(q), nil, nil, c)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("q=%q: %d", q, resp.StatusCode)
			continue
		}
		if diff := cmp.Diff(want, rows(body)); diff != "" {
			t.Errorf("q=%q: machines (-want +got):\n%s", q, diff)
		}
		if !strings.Contains(body, `value="`+htmlEscape(q)+`"`) {
			t.Errorf("q=%q: the box does not keep the query", q)
		}
	}
	bad := `state:failed colour:red`
	resp, body := e.do(t, http.MethodGet, "/machines?q="+url.QueryEscape(bad), nil, nil, c)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad query: %d, want 400", resp.StatusCode)
	}
	for _, want := range []string{`data-test="filter-error"`, `colour:red`, `column 14`, `value="` + bad + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page for a bad query lacks %s:\n%s", want, body)
		}
	}
	if got := rows(body); len(got) != 0 {
		t.Errorf("a bad query shows machines %v", got)
	}
}

func rows(body string) []string {
	var out []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestBulkPowerOnSearch: bulk power acts on the search's result: a
// preview names exactly the machines found, the confirmation places one
// order each, by the operator, and nothing for the others. An empty
// result or a bad query places nothing and says why.
func TestBulkPowerOnSearch(t *testing.T) {
	e := start(t, false)
	searchFleet(t, e)
	c, csrf := e.signIn(t, e.token(t, "olga", "operator", "1h"))
	_, page := e.do(t, http.MethodGet, "/machines?q=tag:web", nil, nil, c)
	if !strings.Contains(page, `data-test="bulk-form"`) || !strings.Contains(page, `name="q" value="tag:web"`) {
		t.Fatalf("the machines page has no bulk form carrying its query:\n%s", page)
	}
	form := url.Values{"csrf": {csrf}, "action": {"cycle"}, "q": {"tag:web"}}
	resp, body := e.do(t, http.MethodPost, "/machines/power", form, e.origin(), c)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Power cycle these 2 machines?") {
		t.Fatalf("preview: %d\n%s", resp.StatusCode, body)
	}
	named := regexp.MustCompile(`data-test="confirm-machine" data-machine="([^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(named) != 2 || named[0][1] != "m1" || named[1][1] != "m2" || !strings.Contains(body, "web-02") {
		t.Fatalf("the preview names %v, want m1 and m2 with their hostnames", named)
	}
	if n := orders(t, e); n != 0 {
		t.Fatalf("%d orders placed by the preview, want none", n)
	}
	// The confirmation: the ids the preview named.
	confirm := url.Values{"csrf": {csrf}, "action": {"cycle"}, "confirm": {"yes"}, "id": {"m1", "m2"}}
	if resp, body := e.do(t, http.MethodPost, "/machines/power", confirm, e.origin(), c); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	if diff := cmp.Diff(map[string]string{"m1": "olga", "m2": "olga"}, orderMachines(t, e)); diff != "" {
		t.Errorf("orders by machine (-want +got):\n%s", diff)
	}
	for name, f := range map[string]url.Values{
		"no match":  {"csrf": {csrf}, "action": {"on"}, "q": {"tag:none-such"}},
		"bad query": {"csrf": {csrf}, "action": {"on"}, "q": {"state:"}},
		"bad id":    {"csrf": {csrf}, "action": {"on"}, "id": {"m9"}},
	} {
		resp, body := e.do(t, http.MethodPost, "/machines/power", f, e.origin(), c)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `data-test="error-message"`) ||
			name == "bad query" && !strings.Contains(body, "term &#34;state:&#34; at column 1") {
			t.Errorf("%s: %d, want 400 with the error\n%s", name, resp.StatusCode, body)
		}
	}
	if n := orders(t, e); n != 2 {
		t.Errorf("%d orders after refused requests, want 2", n)
	}
}

// orderMachines maps each order's machine to who placed it (the
// order.created event's By).
func orderMachines(t *testing.T, e *env) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = e.n.DB.View(func(tx *store.Tx) error {
		evs, err := tx.EventsSince(0, 1000)
		for _, ev := range evs {
			if ev.Kind == "order.created" {
				out[ev.MachineID] = ev.By
			}
		}
		return err
	})
	return out
}

// TestNextBootPXE: the machine page's button asks to confirm, naming the
// machine, then queues a boot_pxe job whose event names the operator;
// an unknown machine is refused and queues nothing.
func TestNextBootPXE(t *testing.T) {
	e := start(t, false)
	addMachine(t, e, "m1")
	c, csrf := e.signIn(t, e.token(t, "nina", "operator", "1h"))
	resp, body := e.do(t, http.MethodPost, "/machines/m1/boot-pxe", url.Values{"csrf": {csrf}}, e.origin(), c)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "set the next boot to PXE of machine <strong>m1</strong>") {
		t.Fatalf("unconfirmed: %d\n%s", resp.StatusCode, body)
	}
	if n := jobs(t, e); len(n) != 0 {
		t.Fatalf("jobs %v before the confirmation", n)
	}
	resp, body = e.do(t, http.MethodPost, "/machines/m1/boot-pxe", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, e.origin(), c)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/machines/m1" {
		t.Fatalf("confirmed: %d %s", resp.StatusCode, body)
	}
	if diff := cmp.Diff([]string{"m1 boot_pxe by nina"}, jobs(t, e)); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
	resp, _ = e.do(t, http.MethodPost, "/machines/m9/boot-pxe", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, e.origin(), c)
	if resp.StatusCode != http.StatusBadRequest || len(jobs(t, e)) != 1 {
		t.Errorf("an unknown machine: %d, jobs %v", resp.StatusCode, jobs(t, e))
	}
}

// jobs lists the stored jobs as "machine action by who" (who from the
// job's created event).
func jobs(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	_ = e.n.DB.View(func(tx *store.Tx) error {
		evs, err := tx.EventsSince(0, 1000)
		for _, ev := range evs {
			if ev.Kind == "bmc.job.created" {
				out = append(out, ev.MachineID+" "+ev.Fields["action"]+" by "+ev.By)
			}
		}
		return err
	})
	return out
}
