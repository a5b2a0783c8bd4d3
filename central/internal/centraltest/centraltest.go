// Package centraltest holds what central's package tests share: a log
// sink they can read while central writes to it, free loopback
// addresses, and waiting on a condition.
package centraltest

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testnet"
	"github.com/outposthq/outpost/internal/testwait"
)

// Buffer is a log sink safe for concurrent writes and reads.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger logs everything, debug included, as text into b.
func (b *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// FreeAddr returns a loopback host:port nothing listens on now
// (testnet.FreeAddr).
func FreeAddr(t testing.TB) string { return testnet.FreeAddr(t) }

// WaitFor waits until cond holds, checking every 10 ms, and fails the
// test if it does not within 20 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 20*time.Second, cond)
}
