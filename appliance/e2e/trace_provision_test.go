package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/browsertest"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/tracing"
)

// TestTraceProvision is issue 15 end to end: the lab's VM provisioned
// through central (traceLab), with the WAN to the site cut once the
// order has reached it, so that the site provisions the machine alone
// and its spans (and the agent's, and the installed OS's metadata
// request's) reach central only after the heal. Then:
//
//   - central holds one trace for the machine's order with spans of
//     centrald, applianced and outpost-agent, correctly parented, every
//     phase of the waterfall there, complete (checkProvisionTrace); while
//     the WAN was down, it held none of the agent's spans;
//   - the site serves the same trace (its own spans and the agent's),
//     and the trace id is the site's order's;
//   - Jaeger, to which centrald and applianced export by OTLP (the
//     appliance relaying the agent's), holds the same trace, complete;
//   - in a browser, the machine's page of the portal and of the site's
//     console show the waterfall: every phase, and the spans' services
//     (the console, those the site holds: not central's).
func TestTraceProvision(t *testing.T) {
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	l := startTraceLab(t)
	step("the lab is up: central at %s, site %s connected, Jaeger at %s", l.Cen.URL, traceSite, l.Jaeger.QueryURL)
	traceID := provisionWithWANCut(t, l, step)

	// The site holds its own spans and the agent's; central's order.place
	// comes from central alone.
	siteView := l.waitTrace("the site", time.Minute, func() (traceView, error) {
		v, err := l.siteTrace()
		v.Spans = append(v.Spans, orderPlace(l)...)
		v.Completeness = tracing.Check(v.Spans)
		return v, err
	})
	step("the site holds the trace's spans but central's: %d spans", len(siteView.Spans)-1)
	v := l.waitTrace("central", 2*time.Minute, l.centralTrace)
	step("central holds the complete trace %s: %d spans", traceID, len(v.Spans))
	if got := v.Spans[0].TraceID; got != traceID {
		t.Fatalf("central's trace of the machine is %s, the site's order's %s", got, traceID)
	}
	checkProvisionTrace(t, v)
	var byID traceView
	if err := l.Cen.Do("GET", "/v1/traces/"+traceID, nil, &byID); err != nil || len(byID.Spans) != len(v.Spans) {
		t.Errorf("central: GET /v1/traces/%s: %d spans (%v), want the machine's %d", traceID, len(byID.Spans), err, len(v.Spans))
	}
	checkSiteTrace(t, l, v)
	checkJaegerTrace(t, l, v)
	step("the site and Jaeger hold the same spans")
	checkWaterfallPages(t, l)
	step("the portal's and the console's machine pages show the waterfall")
}

// provisionWithWANCut places the provisioning order at central, cuts
// the WAN once it is at the site, waits until the VM runs the installed
// OS, checks that central got none of the agent's spans meanwhile, heals
// the WAN, and returns the order's trace id as the site has it.
func provisionWithWANCut(t *testing.T, l *traceLab, step func(string, ...any)) string {
	t.Helper()
	order := map[string]any{"action": "provision", "machine_id": traceMachine, "template": labsite.TemplateName,
		"image": labsite.TestOSName, "values": map[string]string{"hostname": traceHost}}
	if err := l.Cen.Do("PUT", "/v1/sites/"+traceSite+"/orders/"+traceOrder, order, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	var o store.Order
	if err := labsite.Poll(ctx, time.Minute, func() error { return l.Site.API.Get(ctx, "orders", traceOrder, &o) }); err != nil {
		t.Fatalf("the order did not reach the site: %v", err)
	}
	l.Site.WAN.SetMode(lab.Refuse)
	step("the order is at the site: the WAN is cut")
	line, _, err := l.VM.waitSerial(ctx, testOSLine, 0)
	if err != nil {
		t.Fatalf("the machine did not provision with the WAN down: %v", err)
	}
	step("the VM runs the installed OS: %s", line)
	done := waitOrder(ctx, t, l.Site, traceOrder)
	if done.State != store.OrderSucceeded {
		t.Fatalf("the order at the site: %s %q", done.State, done.Reason)
	}
	traceID := tracing.TraceID(done.Traceparent)
	if traceID == "" {
		t.Fatalf("the site's order carries no traceparent (%q)", done.Traceparent)
	}
	if v, err := l.centralTrace(); err == nil {
		for _, s := range v.Spans {
			if s.Service == "outpost-agent" {
				t.Fatalf("central holds the agent's span %s while the WAN is down", s.Name)
			}
		}
	}
	l.Site.WAN.SetMode(lab.Pass)
	step("the WAN is healed")
	return traceID
}

// orderPlace is central's order.place span of the machine's trace, if
// central has it.
func orderPlace(l *traceLab) []tracing.Span {
	v, _ := l.centralTrace()
	for _, s := range v.Spans {
		if s.Name == tracing.SpanOrderPlace {
			return []tracing.Span{s}
		}
	}
	return nil
}

// checkSiteTrace checks the site's view of the machine's trace against
// central's: read after central's, the site holds every span central has
// of applianced and the agent (central gets them from the site's store,
// where they stay).
func checkSiteTrace(t *testing.T, l *traceLab, central traceView) {
	t.Helper()
	site, err := l.siteTrace()
	if err != nil {
		t.Fatalf("the site: GET /v1/machines/%s/trace: %v", traceMachine, err)
	}
	have := map[string]bool{}
	for _, s := range site.Spans {
		have[s.TraceID+"/"+s.SpanID] = true
	}
	for _, s := range central.Spans {
		if s.Service != "centrald" && !have[s.TraceID+"/"+s.SpanID] {
			t.Errorf("the site's trace of %s lacks %s's span %s %s", traceMachine, s.Service, s.Name, s.SpanID)
		}
	}
}

// checkJaegerTrace waits until Jaeger holds every span of the trace
// central has: centrald's and applianced's, which they export by OTLP,
// and the agent's, which the appliance keeping them relays; and checks
// their names, services and parents, and that Jaeger's trace is as
// complete as central's.
func checkJaegerTrace(t *testing.T, l *traceLab, central traceView) {
	t.Helper()
	want := map[string]tracing.Span{}
	for _, s := range central.Spans {
		want[s.SpanID] = s
	}
	traceID := central.Spans[0].TraceID
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got, err := l.Jaeger.WaitTrace(ctx, traceID, func(spans []tracing.Span) bool {
		n := 0
		for _, s := range spans {
			if _, ok := want[s.SpanID]; ok {
				n++
			}
		}
		return n == len(want)
	})
	if err != nil {
		t.Fatalf("Jaeger: %v; it holds %s", err, spanList(got))
	}
	for _, s := range got {
		w, ok := want[s.SpanID]
		if !ok {
			continue
		}
		if s.Name != w.Name || s.Parent != w.Parent || s.Service != w.Service {
			t.Errorf("Jaeger's span %s: %s/%s under %q, central's %s/%s under %q", s.SpanID, s.Service, s.Name, s.Parent,
				w.Service, w.Name, w.Parent)
		}
	}
	if c := tracing.Check(got); !c.Complete || !slices.Equal(c.Services, traceServices) {
		t.Errorf("Jaeger's trace: %+v, want complete with services %v", c, traceServices)
	}
}

// checkWaterfallPages opens the machine's page in the portal and in the
// site's console, and waits until each shows every phase of the
// waterfall and the services whose spans are listed.
func checkWaterfallPages(t *testing.T, l *traceLab) {
	t.Helper()
	viewer := l.viewerToken()
	p := &portal{t: t, b: browsertest.Start(t, browsertest.Allow(l.Cen.URL), browsertest.TrustCA(readCert(t, l.Cen.CAFile))), url: l.Cen.URL}
	p.signIn(viewer, "trace-viewer", "viewer")
	p.machine(traceSite + "/" + traceMachine)
	waitWaterfall(t, p.b, "the portal's page of "+traceMachine, false)
	p.b.Capture("portal-waterfall")

	console := "https://" + forwardTo(t, l.Site.NS, labsite.APIAddr)
	b := browsertest.Start(t, browsertest.Allow(console), browsertest.TrustCA(readCert(t, l.Site.CAFile())))
	signIn(t, b, console, l.Site.Token)
	b.Navigate(console + "/machines/" + traceMachine)
	waitWaterfall(t, b, "the console's page of "+traceMachine, true)
	b.Capture("console-waterfall")
}

// viewerToken makes a viewer's token at central.
func (l *traceLab) viewerToken() string {
	l.t.Helper()
	var tok httpapi.TokenCreated
	if err := l.Cen.Do("POST", "/v1/tokens", httpapi.TokenRequest{Name: "trace-viewer", Role: access.Viewer}, &tok); err != nil {
		l.t.Fatalf("create a viewer's token at central: %v", err)
	}
	return tok.Token
}

// waitWaterfall waits until the page b shows every phase of the
// waterfall, and its spans list (which the page may show folded) names
// each service of the trace (in any case); but for central's, when the
// page is the site's console: the site does not hold central's
// order.place span, so its waterfall starts with the BMC phase.
func waitWaterfall(t *testing.T, b *browsertest.Browser, page string, site bool) {
	t.Helper()
	var phases, services []string
	for _, p := range tracing.PhaseNames {
		if !site || p != tracing.PhaseOrderDelivery {
			phases = append(phases, p)
		}
	}
	for _, s := range traceServices {
		if !site || s != "centrald" {
			services = append(services, s)
		}
	}
	missing := fmt.Sprintf(`(() => { if (!document.body) return ["the page"];
		const shown = document.body.innerText.toLowerCase(), all = document.body.textContent.toLowerCase();
		return %s.filter(w => !shown.includes(w.toLowerCase())).concat(
			%s.filter(w => !all.includes(w.toLowerCase()))) })()`, jsList(phases), jsList(services))
	err := labsite.Poll(t.Context(), time.Minute, func() error {
		if m := evalJS[[]string](t, b, "read "+page, missing); len(m) > 0 {
			return fmt.Errorf("it does not show %q", m)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v; it reads:\n%s", page, err, evalJS[string](t, b, "read "+page, `document.body ? document.body.innerText : ""`))
	}
}

// jsList is a JavaScript array literal of strings.
func jsList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = js(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
