package tracing_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/internal/tracing"
)

// BenchmarkSpan is what one span of the boot path costs the goroutine
// that records it: its start with a remote parent (a workflow's
// traceparent) and four attributes, and its end. Keeping it is the batch
// processor's, on its own goroutine (BenchmarkStoreAdd).
func BenchmarkSpan(b *testing.B) {
	s, err := tracing.OpenStore(filepath.Join(b.TempDir(), "spans.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p, err := tracing.Start(tracing.Config{Service: "applianced", Node: "n1", Store: s})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	tr := p.Tracer("bench")
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	b.ReportAllocs()
	for b.Loop() {
		_, span := tr.Start(tracing.WithRemoteParent(context.Background(), tp), tracing.SpanBootHTTP,
			trace.WithAttributes(attribute.String(tracing.AttrMAC, "52:54:00:12:34:56"), attribute.String(tracing.AttrMachine, "m1"),
				attribute.String(tracing.AttrBootFile, "initrd"), attribute.Int("http.status", 200)))
		span.End()
	}
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStoreAdd is what keeping one span costs, in batches of 512
// (the batch span processor's): its record made from the SDK's span,
// its JSON and its two keys in one transaction per batch.
func BenchmarkStoreAdd(b *testing.B) {
	s, err := tracing.OpenStore(filepath.Join(b.TempDir(), "spans.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	batch := make([]tracing.Span, 512)
	var n uint64
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = tracing.Span{TraceID: tracing.TraceID(tp), SpanID: fmt.Sprintf("%016x", n), Parent: "b7ad6b7169203331",
				Name: tracing.SpanBootHTTP, Service: "applianced", Start: time.Now(), End: time.Now(),
				Attrs: map[string]string{tracing.AttrMAC: "52:54:00:12:34:56", tracing.AttrMachine: "m1", tracing.AttrBootFile: "initrd"}}
		}
		if err := s.Add(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
}
