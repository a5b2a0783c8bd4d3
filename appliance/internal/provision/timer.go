package provision

import (
	"context"
	"log/slog"
	"time"

	"github.com/outposthq/outpost/appliance/internal/replica"
	"github.com/outposthq/outpost/appliance/internal/store"
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
		err := node.DB().View(func(tx *store.Tx) (err error) {
			due, err = tx.DueWorkflows(now)
			return err
		})
		if err != nil {
			log.Error("workflow timer: due workflows", "err", err)
			continue
		}
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
