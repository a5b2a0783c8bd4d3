package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/internal/tracing"
)

// The tracing lab's site and machine.
const (
	traceSite    = "tr"
	traceMachine = "trace1"
	traceMAC     = "52:54:00:7a:0c:01"
	traceHost    = "trace-host-1"
	traceOrder   = "trace-prov"
	// traceOTLPPort is where applianced exports by OTLP, on its
	// namespace's own loopback: a proxy there passes it to Jaeger.
	traceOTLPPort = 4318
)

// traceView is the answer of the trace endpoints, central's
// (/v1/traces/{id}, /v1/fleet/machines/{site}/{id}/trace) and the
// site's (/v1/traces/{id}, /v1/machines/{id}/trace).
type traceView struct {
	Spans        []tracing.Span       `json:"spans"`
	Phases       []tracing.Phase      `json:"phases"`
	Completeness tracing.Completeness `json:"completeness"`
}

// traceLab is a real centrald (HTTPS, for the portal) and a site synced
// with it through a WAN the test cuts and heals, with a QEMU VM behind
// ipmi_sim registered at central, and a Jaeger all-in-one on the test's
// loopback to which both export their spans by OTLP
// (OTEL_EXPORTER_OTLP_ENDPOINT): centrald directly, applianced through a
// proxy on its namespace's loopback (traceOTLPPort).
type traceLab struct {
	t      *testing.T
	Cen    *labsite.Central
	Site   *labsite.Site
	VM     *bmcVM
	Jaeger *lab.Jaeger
}

// startTraceLab starts the tracing lab and returns once the site is
// connected and has applied the machine central holds for it.
func startTraceLab(t *testing.T) *traceLab {
	t.Helper()
	lab.Require(t, "root", "ip", "qemu-system-x86_64", "ipmi_sim", "ipmitool", "chromium", "certutil")
	l := &traceLab{t: t, Jaeger: lab.StartJaeger(t)}
	// Each process takes the environment as it is when it starts.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", l.Jaeger.OTLPEndpoint)
	l.Cen = startCentralTLS(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", fmt.Sprintf("http://127.0.0.1:%d", traceOTLPPort))
	cfg := bmcSiteConfig(t, 40*time.Second, 10*time.Second)
	cfg.Sync = &labsite.Sync{Central: l.Cen, SiteID: traceSite}
	l.Site = startBMCSite(t, cfg)
	lab.StartFaultProxyIn(t, l.Site.NS, fmt.Sprintf("127.0.0.1:%d", traceOTLPPort),
		strings.TrimPrefix(l.Jaeger.OTLPEndpoint, "http://"))
	l.VM = startBMCVM(t, l.Site, traceMAC)
	machine := map[string]any{"id": traceMachine, "hostname": traceMachine, "arch": "x86_64",
		"interfaces": []map[string]any{{"name": "eth0", "mac": traceMAC, "boot": true}},
		"bmc": map[string]any{"address": l.VM.BMC.Addr, "driver": "ipmi",
			"username": l.VM.BMC.Username, "password": l.VM.BMC.Password}}
	if err := l.Cen.Do("PUT", "/v1/sites/"+traceSite+"/machines/"+traceMachine, machine, nil); err != nil {
		t.Fatalf("register %s at central: %v", traceMachine, err)
	}
	waitConnected(t, l.Cen, traceSite, true)
	return l
}

// centralTrace reads the machine's last order's trace from central.
func (l *traceLab) centralTrace() (traceView, error) {
	var v traceView
	err := l.Cen.Do("GET", "/v1/fleet/machines/"+traceSite+"/"+traceMachine+"/trace", nil, &v)
	return v, err
}

// siteTrace reads the machine's latest workflow's trace from the site.
func (l *traceLab) siteTrace() (traceView, error) {
	var v traceView
	err := l.Site.API.Do(l.t.Context(), "GET", "/v1/machines/"+traceMachine+"/trace", nil, &v)
	return v, err
}

// waitTrace waits until read returns a complete trace (tracing.Check),
// and returns it; what names whose trace it is.
func (l *traceLab) waitTrace(what string, timeout time.Duration, read func() (traceView, error)) traceView {
	l.t.Helper()
	var v traceView
	err := labsite.Poll(l.t.Context(), timeout, func() error {
		var err error
		if v, err = read(); err != nil {
			return err
		}
		if !v.Completeness.Complete {
			return fmt.Errorf("not complete: %+v", v.Completeness)
		}
		return nil
	})
	if err != nil {
		l.t.Fatalf("the machine's trace at %s: %v; spans: %s", what, err, spanList(v.Spans))
	}
	return v
}

// spanList describes spans for a failure's message.
func spanList(spans []tracing.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %s %s/%s %s (parent %s)", s.TraceID, s.Service, s.Name, s.SpanID, s.Parent)
	}
	return b.String()
}

// traceServices are the programs a provision's trace holds spans of.
var traceServices = []string{"applianced", "centrald", "outpost-agent"}

// checkProvisionTrace checks a provision's trace as central serves it:
// one trace; spans of centrald, applianced and the agent; complete and
// without orphans; the spans of each step of the provision, each under
// the right parent (the order placed at central, applied at the site;
// the site's BMC jobs, DHCP exchanges, boot fetches and the installed
// OS's metadata request under the site's applying; the agent's actions
// under its run); every phase of the waterfall, in order.
func checkProvisionTrace(t *testing.T, v traceView) {
	t.Helper()
	if c := v.Completeness; !c.Complete || c.Orphans != 0 || !slices.Equal(c.Services, traceServices) {
		t.Errorf("the trace's completeness: %+v, want complete, no orphan, services %v", c, traceServices)
	}
	byID := map[string]*tracing.Span{}
	for i := range v.Spans {
		s := &v.Spans[i]
		byID[s.SpanID] = s
		if s.TraceID != v.Spans[0].TraceID {
			t.Errorf("span %s/%s is of trace %s, the others of %s", s.Service, s.Name, s.TraceID, v.Spans[0].TraceID)
		}
	}
	under := func(s *tracing.Span, name string) bool {
		for p := byID[s.Parent]; p != nil; p = byID[p.Parent] {
			if p.Name == name {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for _, s := range v.Spans {
		step := traceStep(&s)
		seen[step] = true
		var parent string
		switch step {
		case "order.place":
			if s.Parent != "" || s.Service != "centrald" {
				t.Errorf("order.place is recorded by %s under %q, want centrald's, the root", s.Service, s.Parent)
			}
			continue
		case "other":
			continue
		case "order.apply":
			parent = tracing.SpanOrderPlace
		case "action":
			parent = tracing.SpanAgent
		default:
			parent = tracing.SpanOrderApply
		}
		if !under(&s, parent) {
			t.Errorf("span %s/%s %s is not under %s: %s", s.Service, s.Name, s.SpanID, parent, spanList(v.Spans))
		}
	}
	for _, step := range []string{"order.place", "order.apply", "bmc", "dhcp.exchange", "boot.fetch script", "boot.fetch kernel",
		"boot.fetch initrd", "agent.run", "action", "metadata.get"} {
		if !seen[step] {
			t.Errorf("the trace has no span of %s: %s", step, spanList(v.Spans))
		}
	}
	checkActions(t, v.Spans)
	var names []string
	for _, p := range v.Phases {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, tracing.PhaseNames) {
		t.Errorf("the trace's phases: %q, want %q", names, tracing.PhaseNames)
	}
}

// traceStep names the step of a provision a span is of.
func traceStep(s *tracing.Span) string {
	switch {
	case s.Name == tracing.SpanOrderPlace, s.Name == tracing.SpanOrderApply, s.Name == tracing.SpanDHCP,
		s.Name == tracing.SpanAgent, s.Name == tracing.SpanMetadata, s.Name == tracing.SpanTFTP:
		return s.Name
	case s.Name == tracing.SpanBootHTTP:
		return s.Name + " " + s.Attrs[tracing.AttrBootFile]
	case strings.HasPrefix(s.Name, tracing.SpanBMCPrefix):
		return "bmc"
	case strings.HasPrefix(s.Name, tracing.SpanActionPrefix):
		return "action"
	}
	return "other"
}

// checkActions checks the agent's action spans: one per action of the
// install template, each with its type, the image write with its
// progress events.
func checkActions(t *testing.T, spans []tracing.Span) {
	t.Helper()
	actions := map[string]*tracing.Span{}
	for i := range spans {
		if strings.HasPrefix(spans[i].Name, tracing.SpanActionPrefix) {
			actions[strings.TrimPrefix(spans[i].Name, tracing.SpanActionPrefix)] = &spans[i]
		}
	}
	for _, a := range labsite.InstallTemplate().Actions {
		s := actions[a.Name]
		switch {
		case s == nil:
			t.Errorf("no span of action %s", a.Name)
		case s.Service != "outpost-agent" || s.Attrs[tracing.AttrActionType] != a.Type:
			t.Errorf("action %s's span: by %s, type %q, want outpost-agent's of type %s", a.Name, s.Service,
				s.Attrs[tracing.AttrActionType], a.Type)
		case s.Error != "":
			t.Errorf("action %s's span says it failed: %s", a.Name, s.Error)
		case a.Type == "image.write" && !slices.ContainsFunc(s.Events, func(e tracing.SpanEvent) bool {
			return e.Name == "progress" && e.Attrs[tracing.AttrBytes] != ""
		}):
			t.Errorf("the image write's span has no progress event with %s: %+v", tracing.AttrBytes, s.Events)
		}
	}
}

// forwardTo serves a port of the test's loopback, passing each
// connection to addr in ns, until the test ends, and returns its
// address.
func forwardTo(t *testing.T, ns *lab.Netns, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	ctx := t.Context()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { pipeTo(ctx, ns, c, addr) })
		}
	})
	return ln.Addr().String()
}

// pipeTo copies between c and a new connection to addr in ns, until
// both ends are done or ctx is.
func pipeTo(ctx context.Context, ns *lab.Netns, c net.Conn, addr string) {
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	u, err := ns.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return
	}
	defer u.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); u.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() })
	wg.Go(func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite() })
	wg.Wait()
}
