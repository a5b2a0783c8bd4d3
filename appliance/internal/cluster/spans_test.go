package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/testwait"
	"github.com/outposthq/outpost/internal/tracing"
)

// fastRaft elects sooner than Raft's defaults, but not so soon that a
// leader on a loaded machine (the race detector, other tests) misses its
// lease and steps down in the middle of a join: at 100 ms it did, in 12
// of 20 runs under load.
func fastRaft(c *raft.Config) {
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// spanNodes starts a site of n nodes over real Raft and mutual TLS, each
// with its span store; the first leads.
func spanNodes(t *testing.T, n int) ([]*cluster.Node, []*tracing.Store) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*cluster.Node
	var stores []*tracing.Store
	for i := range n {
		id, dir := fmt.Sprintf("n%d", i+1), t.TempDir()
		db, err := store.Open(filepath.Join(dir, "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		node := apptest.OpenNode(t, key, cluster.Config{ID: id, Dir: filepath.Join(dir, "raft"), BindAddr: apptest.FreeAddr(t),
			APIURL: "http://127.0.0.1:1", Bootstrap: i == 0, Tuning: fastRaft, Log: log.With("node", id)}, db)
		spans, err := tracing.OpenStore(filepath.Join(dir, "spans.db"), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { spans.Close() })
		node.SetSpanStore(spans)
		if i == 0 {
			testwait.For(t, "a leader", 20*time.Second, node.IsLeader)
		} else {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			apptest.JoinNode(ctx, t, key, node, nodes[0])
			cancel()
		}
		nodes, stores = append(nodes, node), append(stores, spans)
	}
	// Every node knows every member (the leader reads the records).
	testwait.For(t, "member records", 20*time.Second, func() bool {
		var ms []*store.Member
		_ = nodes[0].DB().View(func(tx *store.Tx) (err error) { ms, err = store.List[store.Member](tx); return err })
		return len(ms) == n
	})
	return nodes, stores
}

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func testSpan(trace, id, name, node string, at int) tracing.Span {
	return tracing.Span{TraceID: trace, SpanID: id, Name: name, Service: "applianced", Node: node,
		Start: t0.Add(time.Duration(at) * time.Second), End: t0.Add(time.Duration(at+1) * time.Second)}
}

const traceA = "4bf92f3577b34da6a3ce929d0e0e4736"

// TestSpansGathered: the leader reads every node's unforwarded spans
// over the internal transport, moves each node's forwarding cursor, and
// gathers a trace from every node; a node that is down is named and its
// spans wait for it, the others' come.
func TestSpansGathered(t *testing.T) {
	nodes, stores := spanNodes(t, 3)
	leader := nodes[0]
	add := func(i int, spans ...tracing.Span) {
		t.Helper()
		if err := stores[i].Add(spans); err != nil {
			t.Fatal(err)
		}
	}
	add(0, testSpan(traceA, "0000000000000001", "order.apply", "n1", 0))
	add(1, testSpan(traceA, "0000000000000002", "dhcp.exchange", "n2", 2), testSpan(traceA, "0000000000000003", "boot.fetch", "n2", 3))
	add(2, testSpan(traceA, "0000000000000004", "metadata.get", "n3", 9))

	pending, err := leader.PendingSpans(t.Context(), nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, ns := range pending {
		for _, s := range ns.Spans {
			got[ns.Node] = append(got[ns.Node], s.Name)
		}
	}
	want := map[string][]string{"n1": {"order.apply"}, "n2": {"dhcp.exchange", "boot.fetch"}, "n3": {"metadata.get"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pending spans (-want +got):\n%s", diff)
	}
	// Spans sent but not acknowledged are skipped with after; the
	// limit holds.
	pending, err = leader.PendingSpans(t.Context(), map[string]uint64{"n2": 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range pending {
		if ns.Node == "n2" && (len(ns.Spans) != 1 || ns.Spans[0].Name != "boot.fetch" || ns.Last != 2) {
			t.Errorf("n2 after 1: %+v, want boot.fetch numbered 2", ns)
		}
	}
	if pending, _ := leader.PendingSpans(t.Context(), nil, 1); len(pending) != 3 || len(pending[1].Spans)+len(pending[2].Spans) != 2 {
		t.Errorf("limit 1: %+v, want one span of each node", pending)
	}
	// The acknowledgement moves n2's cursor, on n2.
	if err := leader.SpansForwarded(t.Context(), "n2", 2); err != nil {
		t.Fatal(err)
	}
	if fwd, _ := stores[1].Forwarded(); fwd != 2 {
		t.Errorf("n2's forwarding cursor %d, want 2", fwd)
	}
	if err := leader.SpansForwarded(t.Context(), "n1", 1); err != nil {
		t.Fatal(err)
	}
	pending, err = leader.PendingSpans(t.Context(), nil, 10)
	if err != nil || len(pending) != 1 || pending[0].Node != "n3" {
		t.Errorf("pending after n1 and n2 forwarded: %+v, %v; want n3's only", pending, err)
	}
	if err := leader.SpansForwarded(t.Context(), "n9", 1); err == nil || !strings.Contains(err.Error(), "n9") {
		t.Errorf("forwarded on a node that is no member: %v, want an error naming it", err)
	}

	trace, err := nodes[1].TraceSpans(t.Context(), traceA)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range trace {
		names = append(names, s.Node+" "+s.Name)
	}
	if diff := cmp.Diff([]string{"n1 order.apply", "n2 dhcp.exchange", "n2 boot.fetch", "n3 metadata.get"}, names); diff != "" {
		t.Errorf("trace gathered from n2 (-want +got):\n%s", diff)
	}

	// n3 goes down: its spans wait; the others' still come.
	add(0, testSpan(traceA, "0000000000000005", "bmc.power_cycle", "n1", 1))
	nodes[2].Close()
	pending, err = leader.PendingSpans(t.Context(), nil, 10)
	if err == nil || !strings.Contains(err.Error(), "n3") {
		t.Errorf("with n3 down: error %v, want one naming n3", err)
	}
	if len(pending) != 1 || pending[0].Node != "n1" || pending[0].Spans[0].Name != "bmc.power_cycle" {
		t.Errorf("with n3 down: %+v, want n1's new span", pending)
	}
	trace, err = leader.TraceSpans(t.Context(), traceA)
	if err == nil || len(trace) != 4 {
		t.Errorf("trace with n3 down: %d spans, error %v; want 4 and an error naming n3", len(trace), err)
	}
}
