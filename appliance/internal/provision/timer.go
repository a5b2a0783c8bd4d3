package provision

import (
	"context"
	"log/slog"
	"time"

	"github.com/outposthq/outpost/appliance/internal/replica"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// RunTimer times out workflows until ctx ends. On the ready leader alone,
// it looks every interval for active workflows whose next tick (an
// action's timeout or the workflow's deadline) has come, and proposes a
// tick for each; the tick's time is the leader's clock, and every node
// applies it alike. A tick that changes nothing stores nothing, so two
// leaders ticking across an election do no harm.
func RunTimer(ctx context.Context, node *replica.Node, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !node.IsReadyLeader() {
			continue
		}
		now := time.Now().UTC()
		var due []string
		_ = node.DB().View(func(tx *store.Tx) error {
			active, err := tx.ActiveWorkflows()
			if err != nil {
				log.Error("workflow timer: list workflows", "err", err)
				return nil
			}
			for _, w := range active {
				if next := workflow.NextTick(*w.State); !next.IsZero() && !now.Before(next) {
					due = append(due, w.ID)
				}
			}
			return nil
		})
		for _, id := range due {
			cmd, err := replica.Encode(replica.AdvanceWorkflow, replica.Advance{Workflow: id, Kind: replica.AdvanceTick, Time: now})
			if err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if _, err := node.Apply(cctx, cmd); err != nil {
				log.Warn("workflow timer: tick", "workflow", id, "err", err)
			}
			cancel()
		}
	}
}
