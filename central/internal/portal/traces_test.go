package portal_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/internal/tracing"
)

const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// texts are the texts of the elements named name.
func texts(els map[string][]el, name string) []string {
	var out []string
	for _, e := range els[name] {
		out = append(out, e.text)
	}
	return out
}

// provisionOn gives machine site/id a provision as its last order, with
// its trace.
func (e *env) provisionOn(site, id, status string) {
	e.fleet.change(func() {
		e.fleet.machines[site+"/"+id].LastOrder = &fleet.Order{Key: "o1", Action: "provision", Image: "debian-12", Status: status,
			Placed: t0, Updated: t0, TraceID: traceID}
	})
}

// TestMachineWaterfall: a machine's page draws its last order's trace:
// each phase with its duration, the phases not there yet named, and the
// spans beneath (service, name, duration); a machine without an order,
// or whose order has no trace (or no span yet), says so.
func TestMachineWaterfall(t *testing.T) {
	e := start(t)
	c, _ := e.signIn(t, "viewer")
	spans := centraltest.ProvisionTrace(traceID, t0)
	e.provisionOn("eu1", "m1", fleet.OrderRunning)
	e.traces.set(traceID, spans[:len(spans)-1])

	_, body := e.Do(t, http.MethodGet, "/machines/eu1/m1", nil, nil, c)
	els := elements(t, body)
	want := []string{"order delivery", "BMC", "firmware to DHCP", "iPXE", "installer boot", "wipe", "image write", "configure", "reboot"}
	if diff := cmp.Diff(want, texts(els, "phase-name")); diff != "" {
		t.Errorf("phases before the first boot (-want +got):\n%s", diff)
	}
	if got := texts(els, "phase-took"); len(got) != len(want) || got[0] != "2.0s" || got[6] != "1m00s" {
		t.Errorf("phase durations %q: want order delivery 2.0s, image write 1m00s", got)
	}
	if got := texts(els, "trace-complete"); len(got) != 1 || got[0] != "Not yet there: first boot to metadata." {
		t.Errorf("completeness %q", got)
	}
	if got := texts(els, "span-service"); len(got) != len(spans)-1 || got[0] != "centrald" || !slices.Contains(got, "outpost-agent") {
		t.Errorf("span services %q", got)
	}
	if got := texts(els, "span-name"); got[0] != tracing.SpanOrderPlace {
		t.Errorf("spans %q, want order.place first", got)
	}
	if got := texts(els, "trace-id"); len(got) != 1 || got[0] != traceID {
		t.Errorf("trace id %q", got)
	}

	e.traces.set(traceID, spans)
	_, body = e.Do(t, http.MethodGet, "/machines/eu1/m1", nil, nil, c)
	els = elements(t, body)
	if got := texts(els, "phase-name"); len(got) != len(tracing.PhaseNames) || got[9] != tracing.PhaseFirstBoot {
		t.Errorf("phases of the whole trace %q", got)
	}
	if got := texts(els, "trace-complete"); got[0] != "Every phase is there." {
		t.Errorf("completeness of the whole trace %q", got)
	}

	e.fleet.change(func() {
		e.fleet.machines["eu1/m3"].LastOrder = &fleet.Order{Key: "o7", Action: "power_on", Status: fleet.OrderPlaced}
		e.fleet.machines["eu1/m4"].LastOrder = &fleet.Order{Key: "o8", Action: "provision", Status: fleet.OrderPlaced, TraceID: strings.Repeat("1", 32)}
	})
	for page, note := range map[string]string{
		"/machines/eu1/m2": "No order yet.",
		"/machines/eu1/m3": "Order o7 has no trace.",
		"/machines/eu1/m4": "No spans of this order's trace have arrived yet.",
	} {
		_, body := e.Do(t, http.MethodGet, page, nil, nil, c)
		els := elements(t, body)
		if got := texts(els, "waterfall-note"); len(got) != 1 || got[0] != note || len(els["phase-row"]) != 0 {
			t.Errorf("%s: note %q, %d phases; want %q", page, got, len(els["phase-row"]), note)
		}
	}
}

// TestCharts: provisioning time per image and per hardware class
// (p50/p90/p99 of those that succeeded, and their histogram), and the
// success ratio per day, image and class, the classes that fail most
// first; orders that are not provisions, or have not ended, count for
// nothing.
func TestCharts(t *testing.T) {
	e := start(t)
	c, _ := e.signIn(t, "viewer")
	day1, day2 := t0, t0.Add(24*time.Hour)
	set := func(key, image, hw, status string, placed time.Time, took time.Duration) {
		m := e.fleet.machines[key]
		m.Hardware = hw
		m.LastOrder = &fleet.Order{Key: "o-" + key, Action: "provision", Image: image, Status: status, Placed: placed, Updated: placed.Add(took)}
	}
	e.fleet.change(func() {
		set("eu1/m1", "debian-12", "Dell PowerEdge R650", fleet.OrderSucceeded, day1, 10*time.Minute)
		set("eu1/m2", "debian-12", "Dell PowerEdge R650", fleet.OrderSucceeded, day1, 20*time.Minute)
		set("eu1/m3", "ubuntu-24", "", fleet.OrderFailed, day2, 30*time.Minute)
		set("eu1/m4", "ubuntu-24", "", fleet.OrderSucceeded, day2, 5*time.Minute)
		set("us1/m1", "ubuntu-24", "", fleet.OrderRunning, day2, time.Minute)
	})
	_, body := e.Do(t, http.MethodGet, "/charts", nil, nil, c)
	els := elements(t, body)
	if got := texts(els, "charts-provisions"); len(got) != 1 || got[0] != "4" || texts(els, "charts-succeeded")[0] != "3" {
		t.Fatalf("summary %q %q, want 4 ended, 3 succeeded", got, texts(els, "charts-succeeded"))
	}
	section := func(name string) map[string][]el {
		t.Helper()
		i := strings.Index(body, `data-test="`+name+`"`)
		if i < 0 {
			t.Fatalf("no section %s", name)
		}
		j := strings.Index(body[i:], "</section>")
		return elements(t, "<div "+body[i:i+j])
	}
	img := section("time-by-image")
	if diff := cmp.Diff([]string{"debian-12", "ubuntu-24"}, attrs(img, "dist-row", "data-group")); diff != "" {
		t.Errorf("groups by image (-want +got):\n%s", diff)
	}
	if got := [][]string{texts(img, "dist-n"), texts(img, "dist-p50"), texts(img, "dist-p90"), texts(img, "dist-p99")}; !cmp.Equal(got,
		[][]string{{"2", "1"}, {"10m00s", "5m00s"}, {"20m00s", "5m00s"}, {"20m00s", "5m00s"}}) {
		t.Errorf("per image n, p50, p90, p99: %q", got)
	}
	// debian-12's 10m is in the bucket 5m–10m, its 20m in 15m–20m.
	if got := texts(img, "hist-count"); len(got) != 22 || strings.Join(got[:11], " ") != "0 0 0 1 0 1 0 0 0 0 0" {
		t.Errorf("histogram counts %q", got)
	}
	cls := section("time-by-class")
	if diff := cmp.Diff([]string{"Dell PowerEdge R650", "unknown"}, attrs(cls, "dist-row", "data-group")); diff != "" {
		t.Errorf("groups by class (-want +got):\n%s", diff)
	}
	for name, want := range map[string][]string{
		"success-by-day":   {"2026-12-08 50%", "2026-12-07 100%"},
		"success-by-image": {"ubuntu-24 50%", "debian-12 100%"},
		"success-by-class": {"unknown 50%", "Dell PowerEdge R650 100%"},
	} {
		s := section(name)
		var got []string
		for i, g := range attrs(s, "ratio-row", "data-group") {
			got = append(got, g+" "+texts(s, "ratio-pct")[i])
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}
