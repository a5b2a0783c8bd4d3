package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// writeCheckEvery is how often watchWrites looks at the node's Raft log
// writes.
const writeCheckEvery = time.Second

// The events watchWrites records.
const (
	EventWriteFailing   = "node.write_failing"
	EventWriteRecovered = "node.write_recovered"
)

// watchWrites records an event on the site's timeline when this node
// starts failing to write its Raft log or store (a full disk) and when
// it can again. The node cannot commit the events itself: it forwards
// them to the leader, so they land once a quorum writes and this node
// has handed leadership over; each is tried every writeCheckEvery until
// it lands. In a one-node site, whose only disk is full, the failing
// event lands only if space returns while it is still failing; the
// recovery always lands (the log, the metrics and GET /v1/cluster say
// it all along).
func watchWrites(ctx context.Context, node *cluster.Node, n *cluster.Site, log *slog.Logger) error {
	t := time.NewTicker(writeCheckEvery)
	defer t.Stop()
	// reported: the failing event landed; owed: a failure was seen and
	// its recovery is not yet recorded.
	var reported, owed bool
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		problem := node.WriteProblem()
		switch {
		case problem != "" && !reported:
			owed = true
			reported = recordWriteEvent(ctx, n, log, store.Event{Kind: EventWriteFailing,
				Message: "node " + node.ID() + " cannot write its data: " + problem,
				Fields:  map[string]string{"node": node.ID(), "error": problem}})
		case problem == "" && owed:
			if recordWriteEvent(ctx, n, log, store.Event{Kind: EventWriteRecovered,
				Message: "node " + node.ID() + " can write its data again", Fields: map[string]string{"node": node.ID()}}) {
				reported, owed = false, false
			}
		}
	}
}

// recordWriteEvent records e and says whether it landed.
func recordWriteEvent(ctx context.Context, n *cluster.Site, log *slog.Logger, e store.Event) bool {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.RecordEvent(rctx, e); err != nil {
		log.Debug("the write problem's event not recorded yet", "kind", e.Kind, "err", err)
		return false
	}
	return true
}
