package site

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
)

// LocalLog applies commands straight to a store through the state
// machine, with no Raft: a log of one node, for tests and tools that work
// on a store alone. Each command gets the index after the store's applied
// index. It implements Log.
type LocalLog struct {
	mu sync.Mutex
	sm *StateMachine
}

// NewLocalLog returns a log that applies to db.
func NewLocalLog(db *store.DB, log *slog.Logger) *LocalLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LocalLog{sm: NewStateMachine(db, log)}
}

// Commit applies cmd at the next index and returns its result.
func (l *LocalLog) Commit(ctx context.Context, cmd []byte) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	res, err := l.sm.Apply([]command.Entry{{Index: l.sm.AppliedIndex() + 1, Data: cmd}})
	if err != nil {
		return Result{}, fmt.Errorf("site: apply locally: %w", err)
	}
	return res[0].(Result), nil
}
