package ratelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLog(t *testing.T) (*Log, *bytes.Buffer, prometheus.Counter, *clock) {
	var buf bytes.Buffer
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	n := prometheus.NewCounter(prometheus.CounterOpts{Name: "refused_total", Help: "refused"})
	l := New(Config{Log: slog.New(slog.NewTextHandler(&buf, nil)), Level: slog.LevelWarn, Message: "bad credential",
		Every: time.Minute, Counter: n, Now: c.now})
	return l, &buf, n, c
}

// A flood from one source is one line per interval, the next saying how
// many were not logged; every occurrence is counted; another source is
// logged on its own.
func TestRecord(t *testing.T) {
	l, buf, n, c := newLog(t)
	for range 1000 {
		l.Record(t.Context(), "198.18.0.5", slog.String("path", "/agent/v1/report"))
	}
	l.Record(t.Context(), "198.18.0.6")
	c.add(time.Minute)
	l.Record(t.Context(), "198.18.0.5")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf)
	}
	for i, want := range []string{
		`level=WARN msg="bad credential" source=198.18.0.5 path=/agent/v1/report`,
		`source=198.18.0.6`,
		`source=198.18.0.5 suppressed=999`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], want)
		}
	}
	if got := testutil.ToFloat64(n); got != 1002 {
		t.Errorf("counter = %v, want 1002", got)
	}
}

// The sources remembered are bounded: past MaxSources, a new source is
// counted, not logged, until the old ones' interval is over.
func TestRecordBounded(t *testing.T) {
	l, buf, n, c := newLog(t)
	for i := range MaxSources + 10 {
		l.Record(t.Context(), fmt.Sprint(i))
	}
	if got := strings.Count(buf.String(), "\n"); got != MaxSources {
		t.Fatalf("%d lines, want %d", got, MaxSources)
	}
	if len(l.sources) != MaxSources {
		t.Fatalf("%d sources remembered, want %d", len(l.sources), MaxSources)
	}
	c.add(time.Minute)
	buf.Reset()
	l.Record(t.Context(), "new")
	if !strings.Contains(buf.String(), "source=new") || len(l.sources) != 1 {
		t.Fatalf("after the interval: %q, %d sources remembered", buf, len(l.sources))
	}
	if got := testutil.ToFloat64(n); got != MaxSources+11 {
		t.Errorf("counter = %v, want %d", got, MaxSources+11)
	}
}
