package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/tracing"
)

// Traceparents of the tests' workflows: trace and parent span ids.
const (
	traceCmdline  = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentCmdline = "00f067aa0ba902b7"
	tpCmdline     = "00-" + traceCmdline + "-" + parentCmdline + "-01"
	traceView     = "0af7651916cd43dd8448eb211c80319c"
	parentView    = "b7ad6b7169203331"
	tpView        = "00-" + traceView + "-" + parentView + "-01"
)

// A traced installation: the agent's run is one agent.run span, a child
// of the command line's traceparent, and each attempt an action.<name>
// span under it, typed, a failed one marked failed; the image write
// carries a few progress events. Every span has reached the appliance
// before the machine reboots, and none carries the token.
func TestTracedRun(t *testing.T) {
	dir := t.TempDir()
	img := testImage(2*chunk + mib + 4321)
	disk := newDisk(t, len(img))
	f := newFakeAPI(t,
		workflow.Action{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": disk}},
		workflow.Action{Name: "image", Type: "image.write", Needs: []string{"wipe"}, Timeout: time.Minute,
			Args: map[string]string{"device": disk, "url": "/artifacts/os.raw", "sha256": sha(img), "format": "raw"}},
		workflow.Action{Name: "flaky", Type: "exec", Needs: []string{"image"}, Retries: 1, Backoff: time.Millisecond,
			Args: map[string]string{"command": "test -e " + filepath.Join(dir, "m") + " || { touch " + filepath.Join(dir, "m") + "; exit 3; }"}},
		workflow.Action{Name: "reboot", Type: "reboot", Needs: []string{"flaky"}},
	)
	f.addArtifact("/artifacts/os.raw", img)
	cfg := testConfig(t, f, fakeToken, agentproto.ParamTraceparent+"="+tpCmdline)
	cfg.TraceBatch = time.Hour // only the flush before the reboot sends them
	var atReboot []tracing.Span
	sys := &fakeSystem{check: func(call string) {
		if call == "sync" {
			atReboot = f.receivedSpans()
		}
	}}
	cfg.System = sys
	startAgent(t, cfg)
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	waitUntil(t, "the reboot", func() bool { return slices.Contains(sys.Calls(), "reboot") })

	byName := map[string][]tracing.Span{}
	for _, sp := range atReboot {
		byName[sp.Name] = append(byName[sp.Name], sp)
		if sp.TraceID != traceCmdline || sp.Service != "outpost-agent" || sp.Node != "m-1" {
			t.Errorf("span %s: trace %s, service %s, node %s; want the command line's trace, outpost-agent, m-1",
				sp.Name, sp.TraceID, sp.Service, sp.Node)
		}
	}
	var names []string
	for name, spans := range byName {
		names = append(names, fmt.Sprintf("%s×%d", name, len(spans)))
	}
	slices.Sort(names)
	want := []string{"action.flaky×2", "action.image×1", "action.reboot×1", "action.wipe×1", "agent.run×1"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("spans sent before the reboot (-want +got):\n%s", diff)
	}
	run := byName[tracing.SpanAgent][0]
	if run.Parent != parentCmdline || run.Attrs[tracing.AttrMachine] != "m-1" || run.Attrs[tracing.AttrMAC] != "52:54:00:12:34:56" || run.Error != "" {
		t.Errorf("agent.run: %+v", run)
	}
	types := map[string]string{"wipe": "disk.wipe", "image": "image.write", "flaky": "exec", "reboot": "reboot"}
	for name, typ := range types {
		for _, sp := range byName[tracing.SpanActionPrefix+name] {
			if sp.Parent != run.SpanID || sp.Attrs[tracing.AttrActionType] != typ || sp.End.After(run.End) {
				t.Errorf("%s: parent %s, type %s, end %s; want a child of agent.run (%s) of type %s ending before it",
					sp.Name, sp.Parent, sp.Attrs[tracing.AttrActionType], sp.End, run.SpanID, typ)
			}
		}
	}
	flaky := byName["action.flaky"]
	slices.SortFunc(flaky, func(a, b tracing.Span) int {
		return strings.Compare(a.Attrs["outpost.attempt"], b.Attrs["outpost.attempt"])
	})
	if !strings.Contains(flaky[0].Error, "3") || flaky[0].Attrs["outpost.attempt"] != "1" || flaky[1].Error != "" {
		t.Errorf("flaky's attempts: %+v", flaky)
	}
	events := byName["action.image"][0].Events
	var sizes []int64
	for _, e := range events {
		n, err := strconv.ParseInt(e.Attrs[tracing.AttrBytes], 10, 64)
		if e.Name != "progress" || err != nil {
			t.Errorf("image event %+v", e)
		}
		sizes = append(sizes, n)
	}
	if len(sizes) == 0 || len(sizes) > 10 || !slices.IsSorted(sizes) || sizes[len(sizes)-1] != int64(len(img)) {
		t.Errorf("image progress events at %v bytes: want a few, growing, the last at the image's %d", sizes, len(img))
	}
	raw, _ := json.Marshal(f.receivedSpans())
	if strings.Contains(string(raw), fakeToken) {
		t.Error("the token is in a span")
	}
	f.with(func(f *fakeAPI) {
		if len(f.badSpans) > 0 {
			t.Errorf("spans the appliance would refuse: %q", f.badSpans)
		}
	})
}

// The run's trace is the workflow's traceparent (the agent's view of
// it), else the command line's; with neither, or with a malformed one,
// or with tracing off, nothing is recorded and nothing sent.
func TestTraceparentSources(t *testing.T) {
	tests := map[string]struct {
		cmdline, view string
		off           bool
		trace, parent string // "": no spans
	}{
		"the command line's":   {cmdline: tpCmdline, trace: traceCmdline, parent: parentCmdline},
		"the workflow's":       {view: tpView, trace: traceView, parent: parentView},
		"the workflow's first": {cmdline: tpCmdline, view: tpView, trace: traceView, parent: parentView},
		"none":                 {},
		"not a traceparent":    {cmdline: "00-xyz-01"},
		"tracing off":          {cmdline: tpCmdline, off: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if tt.off {
				t.Setenv(tracing.Off, "off")
			}
			dir := t.TempDir()
			f := newFakeAPI(t, workflow.Action{Name: "hostname", Type: "file.write",
				Args: map[string]string{"path": filepath.Join(dir, "hostname"), "content": "m-1\n"}})
			f.with(func(f *fakeAPI) { f.traceparent = tt.view })
			var extra []string
			if tt.cmdline != "" {
				extra = append(extra, agentproto.ParamTraceparent+"="+tt.cmdline)
			}
			stop := startAgent(t, testConfig(t, f, fakeToken, extra...))
			if st := waitDone(t, f); st.Status != workflow.Succeeded {
				t.Fatalf("workflow %s: %s", st.Status, st.Reason)
			}
			if tt.trace != "" {
				// The run ends when the agent sees the workflow done.
				waitUntil(t, "the run's span", func() bool { return len(f.receivedSpans()) == 2 })
			}
			stop() // sends what is left
			spans := f.receivedSpans()
			if tt.trace == "" {
				if n := f.requestCount("POST " + agentproto.PathSpans); n != 0 || len(spans) != 0 {
					t.Errorf("%d requests sent %d spans: want none", n, len(spans))
				}
				return
			}
			if len(spans) != 2 {
				t.Fatalf("spans: %+v, want agent.run and action.hostname", spans)
			}
			for _, sp := range spans {
				if sp.TraceID != tt.trace {
					t.Errorf("%s is of trace %s, want %s", sp.Name, sp.TraceID, tt.trace)
				}
				if sp.Name == tracing.SpanAgent && sp.Parent != tt.parent {
					t.Errorf("agent.run's parent is %s, want %s", sp.Parent, tt.parent)
				}
			}
		})
	}
}

// Spans never hold up the machine: refused (403, final) or unanswered
// (503 until the flush gives up), the reboot happens all the same; a
// refused batch is not sent again.
func TestSpansNeverHoldUpReboot(t *testing.T) {
	for name, status := range map[string]int{"refused": http.StatusForbidden, "unavailable": http.StatusServiceUnavailable} {
		t.Run(name, func(t *testing.T) {
			f, sys := run(t, func(f *fakeAPI, cfg *Config) {
				f.spansFault = func() int { return status }
				f.traceparent = tpView
				cfg.TraceBatch = time.Hour
				cfg.FlushTimeout = 300 * time.Millisecond
			}, workflow.Action{Name: "reboot", Type: "reboot"})
			waitUntil(t, "the reboot", func() bool { return slices.Contains(sys.Calls(), "reboot") })
			if n := f.requestCount("POST " + agentproto.PathSpans); n == 0 || status == http.StatusForbidden && n != 1 {
				t.Errorf("%d requests of spans: want the flush's (once if refused)", n)
			}
		})
	}
}

// The agent's span records are package tracing's Span JSON, field for
// field, and its names and limits are tracing's: the agent does not
// import tracing, to stay small.
func TestSpanRecordIsTracingSpan(t *testing.T) {
	for _, c := range []struct{ agent, tracing string }{
		{spanRun, tracing.SpanAgent}, {spanActionPrefix, tracing.SpanActionPrefix},
		{attrActionType, tracing.AttrActionType}, {attrMachine, tracing.AttrMachine}, {attrMAC, tracing.AttrMAC},
		{attrBytes, tracing.AttrBytes}, {envTracing, tracing.Off},
	} {
		if c.agent != c.tracing {
			t.Errorf("the agent's %q is tracing's %q", c.agent, c.tracing)
		}
	}
	if maxSpanName != tracing.MaxNameLen || maxAttrLen != tracing.MaxAttrLen || maxAttrs > tracing.MaxAttrs ||
		maxEvents > tracing.MaxEvents || agentproto.MaxSpans != tracing.MaxSpansPerMsg {
		t.Error("the agent's span limits are not within tracing's")
	}

	rec := tracetest.NewSpanRecorder()
	p := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(serviceName), semconv.ServiceInstanceID("m-1"))))
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	ctx, root := p.Tracer("test").Start(context.Background(), spanRun)
	_, child := p.Tracer("test").Start(ctx, spanActionPrefix+"image", trace.WithAttributes(attribute.String(attrActionType, "image.write")))
	(&progressEvents{span: child, total: 100}).observe(55, 200)
	child.SetStatus(codes.Error, "disk full")
	child.End()
	root.End()
	ended := rec.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans recorded", len(ended))
	}
	for _, s := range ended {
		raw, err := json.Marshal(newSpanRecord(s))
		if err != nil {
			t.Fatal(err)
		}
		var got tracing.Span
		if err := strictJSON(strings.NewReader(string(raw)), &got); err != nil {
			t.Fatalf("%s: not a tracing.Span: %v", raw, err)
		}
		if diff := cmp.Diff(tracing.FromSDK(s), got); diff != "" {
			t.Errorf("%s (-tracing.FromSDK +agent):\n%s", s.Name(), diff)
		}
		if err := got.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// An image write's progress is a few events, not one per block: one each
// tenth of a download of known size, one each GiB written otherwise.
func TestProgressEvents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	p := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	tests := map[string]struct {
		total, step, upto int64
		want              int
	}{
		"known size, small steps": {total: 1000, step: 1, upto: 1000, want: 10},
		"known size, big steps":   {total: 1000, step: 400, upto: 1200, want: 3},
		"unknown size":            {total: 0, step: 64 << 20, upto: 5 << 30, want: 5},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, span := p.Tracer("test").Start(context.Background(), "image")
			ev := &progressEvents{span: span, total: tt.total}
			for n := tt.step; n <= tt.upto; n += tt.step {
				ev.observe(n, n)
			}
			span.End()
			got := rec.Ended()[len(rec.Ended())-1].Events()
			if len(got) != tt.want {
				t.Errorf("%d events, want %d", len(got), tt.want)
			}
		})
	}
}
