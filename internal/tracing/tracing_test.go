package tracing_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/outposthq/outpost/internal/boltfile"
	"github.com/outposthq/outpost/internal/tracing"
)

func openStore(t *testing.T, max int) *tracing.Store {
	t.Helper()
	s, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func span(trace, id, parent, name string, start time.Time, d time.Duration) tracing.Span {
	return tracing.Span{TraceID: fmt.Sprintf("%032s", trace), SpanID: fmt.Sprintf("%016s", id), Parent: parentID(parent),
		Name: name, Service: "test", Start: start, End: start.Add(d)}
}

func parentID(p string) string {
	if p == "" {
		return ""
	}
	return fmt.Sprintf("%016s", p)
}

// A span added twice is kept once; the oldest are dropped beyond the
// limit, from the trace index too; After and the forwarding cursor page
// through what was added.
func TestStoreAddBoundedDeduplicated(t *testing.T) {
	s := openStore(t, 3)
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a, b := span("a", "1", "", "root", t0, time.Second), span("a", "2", "1", "child", t0, time.Second)
	if err := s.Add([]tracing.Span{a, b, a}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add([]tracing.Span{b}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Len(); n != 2 {
		t.Errorf("after a span added twice: %d spans, want 2", n)
	}
	if err := s.Add([]tracing.Span{span("b", "3", "", "x", t0, 0), span("b", "4", "3", "y", t0, 0)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Len(); n != 3 {
		t.Errorf("beyond the limit of 3: %d spans", n)
	}
	got, err := s.Trace(a.TraceID)
	if err != nil || len(got) != 1 || got[0].Name != "child" {
		t.Errorf("trace a after its root was dropped: %+v, %v", got, err)
	}
	page, last, err := s.After(0, 2)
	if err != nil || len(page) != 2 || page[0].Name != "child" || last != 3 {
		t.Errorf("first page: %+v to %d, %v", page, last, err)
	}
	if err := s.SetForwarded(last); err != nil {
		t.Fatal(err)
	}
	if err := s.SetForwarded(1); err != nil {
		t.Fatal(err)
	}
	if fwd, _ := s.Forwarded(); fwd != 3 {
		t.Errorf("forwarded is %d after moving it back to 1; want 3", fwd)
	}
	page, last, _ = s.After(3, 10)
	if len(page) != 1 || page[0].Name != "y" || last != 4 {
		t.Errorf("after 3: %+v to %d", page, last)
	}
	if _, err := s.Trace("xyz"); err == nil {
		t.Error("a trace id that is not hex was read")
	}
	if err := s.Add([]tracing.Span{{TraceID: "zz", SpanID: "1", Name: "bad"}}); err == nil {
		t.Error("a span with a bad id was kept")
	}
}

// A damaged span file is refused, naming it, and left as it was.
func TestStoreDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.db")
	junk := bytes.Repeat([]byte("not bbolt"), 1000)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := tracing.OpenStore(path, 0)
	if !errors.Is(err, boltfile.ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Errorf("a damaged file: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, junk) {
		t.Error("the damaged file was changed")
	}
}

// Spans a provider records reach its store when flushed, parented
// across a traceparent as across a process boundary, with their service,
// node, attributes, events and error; a log line in a span carries its
// ids.
func TestProviderRecordsAcrossTraceparent(t *testing.T) {
	s := openStore(t, 0)
	var sent []tracing.Span
	p, err := tracing.Start(tracing.Config{Service: "applianced", Node: "n1", Store: s,
		Send: func(_ context.Context, spans []tracing.Span) error { sent = append(sent, spans...); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	tr := p.Tracer("test")

	ctx, root := tr.Start(context.Background(), tracing.SpanOrderPlace)
	tp := tracing.Traceparent(ctx)
	if err := tracing.ValidTraceparent(tp); err != nil || tp == "" {
		t.Fatalf("traceparent %q: %v", tp, err)
	}
	root.End()

	// Elsewhere: only the string crossed.
	remote := tracing.WithRemoteParent(context.Background(), tp)
	_, child := tr.Start(remote, tracing.SpanActionPrefix+"image")
	child.SetAttributes(attribute.String(tracing.AttrActionType, "image.write"))
	child.AddEvent("progress", traceAttr(tracing.AttrBytes, "1048576"))
	child.RecordError(errors.New("disk full"))
	child.SetStatus(codes.Error, "disk full")
	var logged bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&logged, nil)))
	log.InfoContext(inSpan(child), "writing")
	child.End()

	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Trace(tracing.TraceID(tp))
	if err != nil || len(got) != 2 {
		t.Fatalf("trace: %+v, %v", got, err)
	}
	c := got[1]
	if c.Parent != got[0].SpanID || c.Service != "applianced" || c.Node != "n1" || c.Attrs[tracing.AttrActionType] != "image.write" ||
		len(c.Events) == 0 || c.Error != "disk full" {
		t.Errorf("the child span: %+v", c)
	}
	if len(sent) != 2 {
		t.Errorf("Send got %d spans, want 2", len(sent))
	}
	if !strings.Contains(logged.String(), `"trace_id":"`+c.TraceID+`"`) || !strings.Contains(logged.String(), `"span_id":"`+c.SpanID+`"`) {
		t.Errorf("log line without the span's ids: %s", logged.String())
	}
	for _, bad := range []string{"00-xyz", "00-" + strings.Repeat("0", 32) + "-" + strings.Repeat("1", 16) + "-01", tp + " "} {
		if tracing.ValidTraceparent(bad) == nil {
			t.Errorf("traceparent %q taken", bad)
		}
	}
}

// OUTPOST_TRACING=off records nothing, and the provider says so.
func TestProviderOff(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("off=%v", off), func(t *testing.T) {
			if off {
				t.Setenv(tracing.Off, "off")
			} else {
				t.Setenv(tracing.Off, "")
			}
			s := openStore(t, 0)
			p, err := tracing.Start(tracing.Config{Service: "applianced", Store: s})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Shutdown(context.Background()) })
			_, span := p.Tracer("test").Start(context.Background(), tracing.SpanOrderPlace)
			span.End()
			if err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			n, err := s.Len()
			if err != nil {
				t.Fatal(err)
			}
			if p.Recording() == off || (n == 0) != off {
				t.Errorf("Recording() = %v with %d spans kept", p.Recording(), n)
			}
		})
	}
}

// A provision's spans make its waterfall, every phase in order; the
// trace is complete when it has one root, no orphan and every phase.
func TestPhases(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	action := func(id, typ string, start, d int) tracing.Span {
		s := span("e", id, "8", tracing.SpanActionPrefix+id, at(start), time.Duration(d)*time.Second)
		s.Attrs = map[string]string{tracing.AttrActionType: typ}
		return s
	}
	spans := []tracing.Span{
		span("e", "1", "", tracing.SpanOrderPlace, at(0), time.Second),
		span("e", "2", "1", tracing.SpanOrderApply, at(2), time.Second),
		span("e", "3", "2", "bmc.power_cycle", at(3), 2*time.Second),
		span("e", "4", "2", tracing.SpanDHCP, at(10), time.Second),       // firmware's DHCP
		span("e", "5", "2", tracing.SpanBootHTTP, at(12), time.Second),   // script
		span("e", "6", "2", tracing.SpanBootHTTP, at(13), 4*time.Second), // initrd
		span("e", "8", "2", tracing.SpanAgent, at(30), 100*time.Second),
		action("a", "disk.wipe", 31, 2),
		action("b", "image.write", 33, 60),
		action("c", "file.write", 93, 1),
		action("d", "reboot", 94, 1),
		span("e", "9", "2", tracing.SpanDHCP, at(150), time.Second),      // the installed OS's
		span("e", "a0", "2", tracing.SpanMetadata, at(160), time.Second), // its first metadata request
		span("e", "a1", "2", tracing.SpanMetadata, at(170), time.Second),
	}
	var got []string
	for _, p := range tracing.Phases(spans) {
		got = append(got, fmt.Sprintf("%s %v-%v", p.Name, p.Start.Sub(t0).Seconds(), p.End.Sub(t0).Seconds()))
	}
	want := []string{"order delivery 0-2", "BMC 3-5", "firmware to DHCP 5-11", "iPXE 11-17", "installer boot 17-30",
		"wipe 31-33", "image write 33-93", "configure 93-94", "reboot 94-151", "first boot to metadata 151-160"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("phases:\n got %q\nwant %q", got, want)
	}
	if c := tracing.Check(spans); !c.Complete || c.Phases != 10 || c.Orphans != 0 {
		t.Errorf("a whole trace: %+v", c)
	}
	// Without central's span the site's spans are orphans, and order
	// delivery is missing.
	c := tracing.Check(spans[1:])
	if c.Complete || c.Orphans != 1 || len(c.Missing) != 1 || c.Missing[0] != tracing.PhaseOrderDelivery {
		t.Errorf("a trace without its root: %+v", c)
	}
}

// A span from outside is refused naming what is wrong.
func TestSpanValidate(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	good := span("e", "1", "", "x", t0, time.Second)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, mut := range map[string]func(*tracing.Span){
		"trace id":  func(s *tracing.Span) { s.TraceID = "nothex" },
		"parent":    func(s *tracing.Span) { s.Parent = "1" },
		"name":      func(s *tracing.Span) { s.Name = "" },
		"service":   func(s *tracing.Span) { s.Service = "" },
		"before":    func(s *tracing.Span) { s.End = s.Start.Add(-time.Second) },
		"attribute": func(s *tracing.Span) { s.Attrs = map[string]string{"k": strings.Repeat("v", 2000)} },
	} {
		s := good
		mut(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// Spans another program recorded (an agent's) are kept, and relayed by
// OTLP as they were recorded: ids, parent, service, node, attributes.
func TestReceivedRelayedByOTLP(t *testing.T) {
	got := make(chan *coltrace.ExportTraceServiceRequest, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not OTLP", http.StatusBadRequest)
			return
		}
		got <- &req
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(nil)
	}))
	defer srv.Close()
	s := openStore(t, 0)
	p, err := tracing.Start(tracing.Config{Service: "applianced", Store: s, OTLPEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	agent := span("e", "b1", "a1", tracing.SpanActionPrefix+"image", t0, time.Minute)
	agent.Service, agent.Node, agent.Attrs = "outpost-agent", "m1", map[string]string{tracing.AttrActionType: "image.write"}
	if err := (tracing.Received{Store: s, Provider: p}).Add([]tracing.Span{agent}); err != nil {
		t.Fatal(err)
	}
	if kept, _ := s.Trace(agent.TraceID); len(kept) != 1 {
		t.Errorf("kept %d spans, want 1", len(kept))
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	req := <-got
	if len(req.ResourceSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans[0].Spans) != 1 {
		t.Fatalf("OTLP request: %v", req)
	}
	res := map[string]string{}
	for _, kv := range req.ResourceSpans[0].Resource.Attributes {
		res[kv.Key] = kv.Value.GetStringValue()
	}
	sp := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
	if hex.EncodeToString(sp.TraceId) != agent.TraceID || hex.EncodeToString(sp.SpanId) != agent.SpanID ||
		hex.EncodeToString(sp.ParentSpanId) != agent.Parent || sp.Name != agent.Name ||
		res["service.name"] != "outpost-agent" || res["service.instance.id"] != "m1" ||
		time.Unix(0, int64(sp.EndTimeUnixNano)).UTC() != agent.End {
		t.Errorf("relayed span %v of resource %v; want %+v", sp, res, agent)
	}
}

// A span recorded here always passes Validate where it is sent: long
// values are clipped (at a character's boundary), too many attributes
// and events are dropped.
func TestRecordedSpansValid(t *testing.T) {
	s := openStore(t, 0)
	p, err := tracing.Start(tracing.Config{Service: "applianced", Store: s})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	ctx, root := p.Tracer("test").Start(context.Background(), strings.Repeat("n", 300))
	root.SetAttributes(attribute.String("long", strings.Repeat("é", 1000)))
	for i := range 100 {
		root.SetAttributes(attribute.Int(fmt.Sprint("a", i), i))
	}
	for range 600 {
		root.AddEvent("progress")
	}
	root.End()
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Trace(tracing.TraceID(tracing.Traceparent(ctx)))
	if err != nil || len(got) != 1 {
		t.Fatalf("trace: %+v, %v", got, err)
	}
	sp := got[0]
	if err := sp.Validate(); err != nil {
		t.Errorf("a recorded span is refused: %v", err)
	}
	if v := sp.Attrs["long"]; len(v) > tracing.MaxAttrLen || len(v) < tracing.MaxAttrLen-1 || !utf8.ValidString(v) {
		t.Errorf("a long value is %d bytes (valid UTF-8: %t), want clipped to about %d", len(v), utf8.ValidString(v), tracing.MaxAttrLen)
	}
}
