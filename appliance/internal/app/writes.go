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
// starts failing to write its Raft log (a full disk) and when it can
// again. The node cannot commit the event itself: it forwards it to the
// leader, so it lands in a cluster whose quorum still writes, and in a
// one-node site, whose only disk is full, the failing event is lost (the
// log, metrics and GET /v1/cluster still say it) and only the recovery
// is recorded.
func watchWrites(ctx context.Context, node *cluster.Node, n *cluster.Site, log *slog.Logger) error {
	t := time.NewTicker(writeCheckEvery)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		problem := node.WriteProblem()
		if (problem != "") == failing {
			continue
		}
		e := store.Event{Kind: EventWriteRecovered, Message: "node " + node.ID() + " can write its raft log again",
			Fields: map[string]string{"node": node.ID()}}
		if problem != "" {
			e = store.Event{Kind: EventWriteFailing, Message: "node " + node.ID() + " cannot write its raft log: " + problem,
				Fields: map[string]string{"node": node.ID(), "error": problem}}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := n.RecordEvent(rctx, e)
		cancel()
		if err != nil {
			log.Warn("the write problem's event not recorded", "kind", e.Kind, "err", err)
		}
		failing = problem != ""
	}
}
