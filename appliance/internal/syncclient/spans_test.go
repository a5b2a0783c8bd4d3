package syncclient

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/testwait"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func testSpan(trace string, n int, name, node string) tracing.Span {
	return tracing.Span{TraceID: trace, SpanID: fmt.Sprintf("%016x", n), Name: name, Service: "applianced", Node: node,
		Start: t0.Add(time.Duration(n) * time.Second), End: t0.Add(time.Duration(n+1) * time.Second)}
}

func traceID(n int) string { return fmt.Sprintf("%032x", n+1) }

// spanCluster starts a three-node site whose nodes keep spans, every
// node's sync client forwarding them (tune changes its configuration).
func spanCluster(t *testing.T, f *fakeCentral, tune func(*Config)) ([]*cluster.Site, map[string]*tracing.Store) {
	cred := filepath.Join(t.TempDir(), "site.credential")
	if err := os.WriteFile(cred, []byte(testCredential), 0o600); err != nil {
		t.Fatal(err)
	}
	stores := map[string]*tracing.Store{}
	nodes := startCluster(t, f, cred, func(n *cluster.Site, cfg *Config) {
		s, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		n.SetSpanStore(s)
		stores[n.ID()] = s
		cfg.Spans, cfg.SpanInterval = n, 20*time.Millisecond
		if tune != nil {
			tune(cfg)
		}
	})
	return nodes, stores
}

func (f *fakeCentral) spanCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.spans)
}

// waitForwarded waits until each node's cursor has reached its last
// span.
func waitForwarded(t *testing.T, stores map[string]*tracing.Store) {
	t.Helper()
	for id, s := range stores {
		testwait.For(t, "node "+id+"'s spans all forwarded", 20*time.Second, func() bool {
			n, _ := s.Len()
			fwd, _ := s.Forwarded()
			return fwd == uint64(n)
		})
	}
}

// TestSpansForwarded: the leader sends central the spans of every node
// of the site, in batches within the protocol's limits, and each
// node's cursor moves once central acknowledges them; spans recorded
// later on a follower follow.
func TestSpansForwarded(t *testing.T) {
	f := newFakeCentral(t, testCredential)
	nodes, stores := spanCluster(t, f, nil)
	want := 0
	for i, n := range nodes {
		var spans []tracing.Span
		for j := range 1500 { // more than a message holds
			spans = append(spans, testSpan(traceID(i), j+1, "dhcp.exchange", n.ID()))
		}
		if err := stores[n.ID()].Add(spans); err != nil {
			t.Fatal(err)
		}
		want += len(spans)
	}
	f.waitFor(fmt.Sprintf("%d spans", want), func() bool { return len(f.spans) == want })
	waitForwarded(t, stores)
	f.mu.Lock()
	for _, n := range f.spanMsgs {
		if n > syncproto.MaxSpansPerBatch {
			t.Errorf("a spans message of %d spans, more than %d", n, syncproto.MaxSpansPerBatch)
		}
	}
	f.mu.Unlock()

	follower := nodes[1]
	if follower.IsLeader() {
		follower = nodes[2]
	}
	if err := stores[follower.ID()].Add([]tracing.Span{testSpan(traceID(9), 1, "metadata.get", follower.ID())}); err != nil {
		t.Fatal(err)
	}
	f.waitFor("the follower's new span", func() bool { _, ok := f.spans[traceID(9)+fmt.Sprintf("%016x", 1)]; return ok })
	waitForwarded(t, stores)
}

// TestSpansUnacknowledgedSentAgain: spans central did not acknowledge
// stay unforwarded, and are sent again on the next connection.
func TestSpansUnacknowledgedSentAgain(t *testing.T) {
	f := newFakeCentral(t, testCredential)
	f.noSpanAcks = true
	nodes, stores := spanCluster(t, f, nil)
	for i, n := range nodes {
		if err := stores[n.ID()].Add([]tracing.Span{testSpan(traceID(0), i+1, "boot.fetch", n.ID())}); err != nil {
			t.Fatal(err)
		}
	}
	f.waitFor("3 spans", func() bool { return len(f.spans) == 3 })
	for id, s := range stores {
		if fwd, _ := s.Forwarded(); fwd != 0 {
			t.Errorf("node %s's cursor moved to %d without an acknowledgement", id, fwd)
		}
	}
	msgs := func() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.spanMsgs) }
	before := msgs()
	f.update(func() { f.noSpanAcks = false })
	f.cut()
	f.waitFor("the spans sent again", func() bool { return len(f.spanMsgs) > before })
	waitForwarded(t, stores)
	if n := f.spanCount(); n != 3 {
		t.Errorf("central keeps %d spans, want 3", n)
	}
}

// countingSource counts the reads of a SpanSource.
type countingSource struct {
	SpanSource
	mu    sync.Mutex
	reads int
}

func (c *countingSource) PendingSpans(ctx context.Context, after map[string]uint64, limit int) ([]site.NodeSpans, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.SpanSource.PendingSpans(ctx, after, limit)
}

// TestSpansNotOnVersion1: on a connection of version 1 the site reads
// and sends no spans; its cursors stay.
func TestSpansNotOnVersion1(t *testing.T) {
	f := newFakeCentral(t, testCredential)
	f.version = 1
	var sources []*countingSource
	nodes, stores := spanCluster(t, f, func(cfg *Config) {
		c := &countingSource{SpanSource: cfg.Spans}
		cfg.Spans, sources = c, append(sources, c)
	})
	leader := leaderOf(t, nodes)
	if err := stores[leader.ID()].Add([]tracing.Span{testSpan(traceID(0), 1, "order.apply", leader.ID())}); err != nil {
		t.Fatal(err)
	}
	// The session is up: events flow.
	if err := recordEvents(t.Context(), leader, 1, "test"); err != nil {
		t.Fatal(err)
	}
	f.waitFor("the event", func() bool { return len(f.stored) >= 1 })
	for _, c := range sources {
		c.mu.Lock()
		if c.reads != 0 {
			t.Errorf("spans read %d times on a version 1 connection", c.reads)
		}
		c.mu.Unlock()
	}
	if n := f.spanCount(); n != 0 {
		t.Errorf("central got %d spans on a version 1 connection", n)
	}
	if fwd, _ := stores[leader.ID()].Forwarded(); fwd != 0 {
		t.Errorf("cursor moved to %d on a version 1 connection", fwd)
	}
}

// TestSpanMessages: spans are split into messages within the limits;
// one too large to send is left out.
func TestSpanMessages(t *testing.T) {
	big := strings.Repeat("x", 1000)
	// Spans near MaxSpanSize each: about 68 to a frame, so these fill
	// five frames.
	const n = 300
	var spans []tracing.Span
	for i := range n {
		s := testSpan(traceID(0), i+1, "action.x", "n1")
		s.Attrs = map[string]string{}
		for k := range 60 {
			s.Attrs[fmt.Sprint("a", k)] = big
		}
		spans = append(spans, s)
	}
	huge := testSpan(traceID(0), 9999, "too big", "n1")
	huge.Events = []tracing.SpanEvent{{Name: "e", Time: t0, Attrs: map[string]string{"x": strings.Repeat("y", syncproto.MaxSpanSize)}}}
	spans = append(spans, huge)
	// A span central would refuse (it ends before it starts) is left
	// out rather than stop the link.
	invalid := testSpan(traceID(0), 9998, "too big", "n1")
	invalid.End = invalid.Start.Add(-time.Second)
	spans = append(spans, invalid)
	msgs := spanMessages(spans)
	total := 0
	for i, m := range msgs {
		frame, err := syncproto.Encode(&syncproto.Spans{Batch: uint64(i + 1), Spans: m})
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(frame) > syncproto.MaxFrameSize {
			t.Errorf("message %d is %d bytes", i, len(frame))
		}
		for _, raw := range m {
			var s tracing.Span
			if err := json.Unmarshal(raw, &s); err != nil || s.Name == "too big" {
				t.Errorf("message %d holds %.60s", i, raw)
			}
		}
		total += len(m)
	}
	if total != n || len(msgs) < 4 {
		t.Errorf("%d spans in %d messages, want %d in at least 4", total, len(msgs), n)
	}
}
