package provision

import (
	"context"
	"log/slog"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Ticker is what the timer needs of its site: whether this node leads,
// its clock, and the proposal of a tick (package site's proposer).
type Ticker interface {
	IsReadyLeader() bool
	// WorkflowNow is the time the ticks carry, which deadlines are
	// compared with (site.Proposer.WorkflowNow).
	WorkflowNow() time.Time
	Tick(ctx context.Context, workflowID string) (*store.Workflow, error)
}

// RunTimer times out workflows until ctx ends. On the ready leader alone,
// it looks every interval for active workflows whose next tick (an
// action's timeout or the workflow's deadline) has come, and proposes a
// tick for each; the tick's time is the leader's clock, and every node
// applies it alike. A tick that changes nothing stores nothing, so two
// leaders ticking across an election do no harm.
func RunTimer(ctx context.Context, ticks Ticker, db *store.DB, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !ticks.IsReadyLeader() {
			continue
		}
		now := ticks.WorkflowNow().UTC()
		var due []string
		err := db.View(func(tx *store.Tx) (err error) {
			due, err = tx.DueWorkflows(now)
			return err
		})
		if err != nil {
			log.Error("workflow timer: due workflows", "err", err)
			continue
		}
		for _, id := range due {
			if _, err := ticks.Tick(ctx, id); err != nil {
				log.Warn("workflow timer: tick", "workflow", id, "err", err)
			}
		}
	}
}
