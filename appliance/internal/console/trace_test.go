package console_test

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// TestMachineWaterfall: a machine's page draws the waterfall of its
// latest workflow's trace, gathered from the site's nodes: each phase
// with its duration and a bar, and the spans beneath; a trace still
// filling in says what it lacks.
func TestMachineWaterfall(t *testing.T) {
	e := start(t, false)
	spans, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spans.Close() })
	e.n.Node.SetSpanStore(spans)
	addMachine(t, e, "m1")
	if _, err := e.n.Site.PutMachine(t.Context(), apptest.Machine("m2", 2), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.n.Site.PutTemplate(t.Context(), &store.Template{Name: "wipe", Actions: []store.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda"}}}}, 0); err != nil {
		t.Fatal(err)
	}
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	tp := "00-" + trace + "-00f067aa0ba902b7-01"
	if _, err := e.n.Site.PlaceOrder(t.Context(), &store.Order{ID: "o1", Action: store.OrderDeprovision, MachineID: "m1", Traceparent: tp}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.signIn(t, e.token(t, "watcher", "viewer", "1h"))
	page := func(id string) string {
		resp, body := e.do(t, http.MethodGet, "/machines/"+id, nil, nil, c)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("machine page: %d", resp.StatusCode)
		}
		return body
	}
	if body := page("m2"); !strings.Contains(body, `data-test="no-trace"`) {
		t.Error("a machine without a workflow shows a trace")
	}
	if body := page("m1"); !strings.Contains(body, `data-test="no-trace"`) {
		t.Error("a trace no node has spans of is drawn")
	}

	if err := spans.Add(tracetest.Provision(trace, t0, false)); err != nil {
		t.Fatal(err)
	}
	body := page("m1")
	if !strings.Contains(body, `data-test="trace-id">`+trace) || !strings.Contains(body, `data-test="trace-incomplete"`) ||
		!strings.Contains(body, "no first boot to metadata yet") {
		t.Errorf("a trace still filling in is not drawn as such:\n%s", section(body, "waterfall"))
	}
	if err := spans.Add(tracetest.Provision(trace, t0, true)); err != nil {
		t.Fatal(err)
	}
	body = page("m1")
	rowRE := regexp.MustCompile(`(?s)<tr data-test="phase-row"><th scope="row" data-test="phase-name">([^<]+)</th><td data-test="phase-took">([^<]+)</td><td class="axis"><span class="bar phase" style="margin-left:([0-9.]+)%;width:([0-9.]+)%"`)
	var got []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		got = append(got, m[1]+" "+m[2]+" at "+m[3]+"%")
	}
	want := []string{"order delivery 2s at 0.00%", "BMC 2s at 1.49%", "firmware to DHCP 16s at 2.49%", "iPXE 9s at 10.45%",
		"installer boot 10s at 14.93%", "wipe 9s at 20.40%", "image write 1m40s at 24.88%", "configure 10s at 74.63%",
		"reboot 31s at 79.60%", "first boot to metadata 9s at 95.02%"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("phases drawn:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(body, `data-test="trace-complete"`) {
		t.Errorf("a whole trace is not shown complete:\n%s", section(body, "waterfall"))
	}
	if n := strings.Count(body, `data-test="span-row"`); n != 12 {
		t.Errorf("%d spans listed, want 12", n)
	}
}

// section is the page's section of data-test name, for failure messages.
func section(body, name string) string {
	i := strings.Index(body, `data-test="`+name+`"`)
	if i < 0 {
		return "(no section " + name + ")"
	}
	j := strings.Index(body[i:], "</section>")
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j]
}

// TestChartsPage: the charts page, linked from every page's navigation,
// shows its sections to a viewer.
func TestChartsPage(t *testing.T) {
	e := start(t, false)
	c, _ := e.signIn(t, e.token(t, "watcher", "viewer", "1h"))
	resp, body := e.do(t, http.MethodGet, "/site", nil, nil, c)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="/charts" data-test="nav-charts"`) {
		t.Fatalf("the site page does not link the charts: %d", resp.StatusCode)
	}
	resp, body = e.do(t, http.MethodGet, "/charts", nil, nil, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("charts: %d", resp.StatusCode)
	}
	for _, s := range []string{"time-by-image", "time-by-class", "ratio-by-day", "ratio-by-image", "ratio-by-class"} {
		if !strings.Contains(body, `data-test="`+s+`"`) {
			t.Errorf("the charts page lacks %s", s)
		}
	}
	if !strings.Contains(body, `data-test="provisions">0 provisions ended`) {
		t.Errorf("a site without provisions: %s", section(body, "provisions"))
	}
}
