package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/internal/tracing"
)

// Jaeger is a running Jaeger all-in-one (v2): a real OTLP receiver that
// keeps the spans it gets in memory and serves them back through its
// query API. Programs export to it with OTEL_EXPORTER_OTLP_ENDPOINT set
// to OTLPEndpoint (JaegerEnv).
type Jaeger struct {
	// OTLPEndpoint is the base URL of its OTLP/HTTP receiver
	// (http://127.0.0.1:PORT; spans are POSTed to /v1/traces).
	OTLPEndpoint string
	// QueryURL is the base URL of its query API and UI
	// (http://127.0.0.1:PORT; /api/traces/{id}).
	QueryURL string
	Process  *Process
}

// ErrTraceNotFound is Jaeger.Trace's error when Jaeger holds no span of
// the trace (yet).
var ErrTraceNotFound = errors.New("lab: jaeger: trace not found")

// jaegerConfig is the collector configuration: OTLP over HTTP in,
// in-memory storage, the query API; nothing else listens (its own
// metrics and tracing are off).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{{query}}
    grpc:
      endpoint: 127.0.0.1:{{query_grpc}}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{{otlp}}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// StartJaeger builds bin/jaeger if it is not up to date (once per test
// binary, scripts/build-jaeger.sh; make test has built it already),
// starts it on free loopback ports and waits until both its receiver
// and its query API answer. It is stopped when the test ends, passed or
// failed.
func StartJaeger(t T) *Jaeger {
	t.Helper()
	bin := buildJaeger(t)
	// A port found free may be taken before Jaeger binds it: try again
	// on new ports when it exits at start.
	var lastErr error
	for range 3 {
		j, err := startJaeger(t, bin)
		if err == nil {
			return j
		}
		lastErr = err
		if t.Context().Err() != nil {
			break
		}
	}
	t.Fatalf("lab: start jaeger: %v", lastErr)
	return nil
}

// startJaeger makes one attempt of StartJaeger.
func startJaeger(t T, bin string) (*Jaeger, error) {
	t.Helper()
	ports := map[string]int{}
	for _, name := range []string{"otlp", "query", "query_grpc"} {
		p, err := freePort(nil, "tcp", "127.0.0.1")
		if err != nil {
			return nil, err
		}
		ports[name] = p
	}
	cfg := jaegerConfig
	for name, p := range ports {
		cfg = strings.ReplaceAll(cfg, "{{"+name+"}}", fmt.Sprint(p))
	}
	dir, err := os.MkdirTemp(t.TempDir(), "jaeger-")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	path := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	j := &Jaeger{
		OTLPEndpoint: fmt.Sprintf("http://127.0.0.1:%d", ports["otlp"]),
		QueryURL:     fmt.Sprintf("http://127.0.0.1:%d", ports["query"]),
	}
	j.Process = StartProcess(t, ProcessConfig{Name: "jaeger", Args: []string{bin, "--config", path}})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := j.wait(ctx); err != nil {
		j.Process.Kill()
		return nil, err
	}
	return j, nil
}

// wait polls the query API and the receiver until both answer, or the
// process exits.
func (j *Jaeger) wait(ctx context.Context) error {
	for {
		qerr := j.get(ctx, "/api/services", nil)
		// The receiver answers a GET of its path with 405: it listens.
		rerr := probe(ctx, j.OTLPEndpoint+"/v1/traces")
		if qerr == nil && rerr == nil {
			return nil
		}
		select {
		case <-j.Process.Exited():
			return fmt.Errorf("lab: jaeger exited at start (%v); its log: %s", j.Process.Err(), tail(j.Process.Stderr, 10))
		case <-ctx.Done():
			return fmt.Errorf("lab: jaeger did not answer (query: %v; receiver: %v): %w", qerr, rerr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probe succeeds when url answers any HTTP status.
func probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Env is the environment that makes a program started with it export its
// spans to j (OTEL_EXPORTER_OTLP_ENDPOINT).
func (j *Jaeger) Env() []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.OTLPEndpoint}
}

// Trace reads the trace traceID back from Jaeger's query API, its spans
// as Outpost keeps them (tracing.Span; attributes from the span's tags,
// Service and Node from its process). ErrTraceNotFound if Jaeger holds
// none of its spans.
func (j *Jaeger) Trace(ctx context.Context, traceID string) ([]tracing.Span, error) {
	var body jaegerResponse
	if err := j.get(ctx, "/api/traces/"+traceID, &body); err != nil {
		return nil, err
	}
	if len(body.Data) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrTraceNotFound, traceID)
	}
	var spans []tracing.Span
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			spans = append(spans, s.span(tr.Processes[s.ProcessID]))
		}
	}
	return spans, nil
}

// WaitTrace reads the trace traceID until done says it is whole (or, with
// done nil, until it holds any span), and returns it; the last error or
// what it held when ctx ends.
func (j *Jaeger) WaitTrace(ctx context.Context, traceID string, done func([]tracing.Span) bool) ([]tracing.Span, error) {
	for {
		spans, err := j.Trace(ctx, traceID)
		if err == nil && (done == nil || done(spans)) {
			return spans, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("lab: jaeger: trace %s incomplete: %d spans", traceID, len(spans))
			}
			return spans, fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-j.Process.Exited():
			return spans, fmt.Errorf("lab: jaeger exited (%v)", j.Process.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// get GETs path from the query API and decodes its JSON into out (if not
// nil); a 404 is ErrTraceNotFound.
func (j *Jaeger) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL+path, nil)
	if err != nil {
		return fmt.Errorf("lab: jaeger: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("lab: jaeger: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("lab: jaeger: GET %s: %w", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: GET %s: %s", ErrTraceNotFound, path, bytes.TrimSpace(raw))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("lab: jaeger: GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(raw))
	}
	if out == nil {
		return nil
	}
	// Numbers as written (an int64 attribute stays exact).
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("lab: jaeger: GET %s: %w", path, err)
	}
	return nil
}

// jaegerResponse is the query API's answer to /api/traces/{id} (its
// "UI model" JSON).
type jaegerResponse struct {
	Data []struct {
		Spans     []jaegerSpan             `json:"spans"`
		Processes map[string]jaegerProcess `json:"processes"`
	} `json:"data"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64       `json:"startTime"` // µs since the epoch
	Duration  int64       `json:"duration"`  // µs
	Tags      []jaegerTag `json:"tags"`
	Logs      []struct {
		Timestamp int64       `json:"timestamp"`
		Fields    []jaegerTag `json:"fields"`
	} `json:"logs"`
	ProcessID string `json:"processID"`
}

type jaegerProcess struct {
	ServiceName string      `json:"serviceName"`
	Tags        []jaegerTag `json:"tags"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func (t jaegerTag) String() string {
	if s, ok := t.Value.(string); ok {
		return s
	}
	return fmt.Sprint(t.Value)
}

// jaegerInternalTags are the tags Jaeger derives from a span's kind and
// status and from OTLP itself, rather than the span's attributes.
var jaegerInternalTags = regexp.MustCompile(`^(span\.kind|error|otel\.status_code|otel\.status_description|otel\.scope\.\w+|internal\.span\.format|w3c\.tracestate)$`)

// span converts a Jaeger span, recorded by p, to Outpost's form.
func (s jaegerSpan) span(p jaegerProcess) tracing.Span {
	start := time.UnixMicro(s.StartTime).UTC()
	out := tracing.Span{
		TraceID: padHex(s.TraceID, 32),
		SpanID:  padHex(s.SpanID, 16),
		Name:    s.OperationName,
		Service: p.ServiceName,
		Kind:    "internal",
		Start:   start,
		End:     start.Add(time.Duration(s.Duration) * time.Microsecond),
	}
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			out.Parent = padHex(r.SpanID, 16)
		}
	}
	for _, tag := range p.Tags {
		if tag.Key == "service.instance.id" {
			out.Node = tag.String()
		}
	}
	for _, tag := range s.Tags {
		switch {
		case tag.Key == "span.kind":
			out.Kind = tag.String()
		case tag.Key == "otel.status_code" && tag.String() == "ERROR":
			if out.Error == "" {
				out.Error = "error"
			}
		case tag.Key == "otel.status_description":
			out.Error = tag.String()
		case jaegerInternalTags.MatchString(tag.Key):
		default:
			if out.Attrs == nil {
				out.Attrs = map[string]string{}
			}
			out.Attrs[tag.Key] = tag.String()
		}
	}
	for _, l := range s.Logs {
		e := tracing.SpanEvent{Time: time.UnixMicro(l.Timestamp).UTC()}
		for _, f := range l.Fields {
			if f.Key == "event" {
				e.Name = f.String()
				continue
			}
			if e.Attrs == nil {
				e.Attrs = map[string]string{}
			}
			e.Attrs[f.Key] = f.String()
		}
		out.Events = append(out.Events, e)
	}
	return out
}

// padHex restores the leading zeros Jaeger drops from ids.
func padHex(id string, n int) string {
	if len(id) >= n {
		return id
	}
	return strings.Repeat("0", n-len(id)) + id
}

var jaegerBuild struct {
	once sync.Once
	path string
	err  error
}

// buildJaeger runs scripts/build-jaeger.sh once per test binary and
// returns bin/jaeger's path.
func buildJaeger(t T) string {
	t.Helper()
	jaegerBuild.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			jaegerBuild.err = err
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-jaeger.sh"))
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			jaegerBuild.err = fmt.Errorf("lab: scripts/build-jaeger.sh: %v\n%s", err, bytes.TrimSpace(out))
			return
		}
		jaegerBuild.path = filepath.Join(root, "bin", "jaeger")
	})
	if jaegerBuild.err != nil {
		t.Fatal(jaegerBuild.err)
	}
	return jaegerBuild.path
}
