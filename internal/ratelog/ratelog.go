// Package ratelog logs what any client can cause at will (a refused
// credential, a refused connection, a refused transfer) at most once per
// source per interval, and counts every occurrence in a metric: a flood
// costs a counter increment each, not a log line each.
//
// The line logged for a source after a quiet interval says how many of
// its occurrences were not logged before it ("suppressed"). At most
// MaxSources sources are remembered at once; past that, the sources of
// new occurrences are forgotten ones only once their interval is over,
// and an occurrence from a source that finds no room is counted, not
// logged.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxSources bounds the sources remembered at once.
const MaxSources = 4096

// DefaultEvery is the interval of a Config that names none.
const DefaultEvery = time.Minute

// Config configures a Log.
type Config struct {
	// Log receives the lines; nil discards them.
	Log *slog.Logger
	// Level is the lines' level.
	Level slog.Level
	// Message is every line's message.
	Message string
	// Every is the least time between two lines about one source;
	// DefaultEvery if zero.
	Every time.Duration
	// Counter counts every occurrence, logged or not; nil counts none.
	Counter prometheus.Counter
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Log is a rate-limited log of one kind of occurrence. It is safe for
// concurrent use.
type Log struct {
	cfg Config

	mu      sync.Mutex
	sources map[string]*source
}

type source struct {
	last       time.Time
	suppressed int
}

// New returns a rate-limited log.
func New(cfg Config) *Log {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Log{cfg: cfg, sources: map[string]*source{}}
}

// Record counts one occurrence from src and logs it with attrs unless
// src was logged less than Every ago.
func (l *Log) Record(ctx context.Context, src string, attrs ...slog.Attr) {
	if l.cfg.Counter != nil {
		l.cfg.Counter.Inc()
	}
	suppressed, ok := l.admit(src)
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	attrs = append([]slog.Attr{slog.String("source", src)}, attrs...)
	l.cfg.Log.LogAttrs(ctx, l.cfg.Level, l.cfg.Message, attrs...)
}

// admit reports whether an occurrence from src is logged, and how many
// were suppressed since its last line.
func (l *Log) admit(src string) (int, bool) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sources[src]
	if s == nil {
		if len(l.sources) >= MaxSources {
			l.forget(now)
		}
		if len(l.sources) >= MaxSources {
			return 0, false
		}
		l.sources[src] = &source{last: now}
		return 0, true
	}
	if now.Sub(s.last) < l.cfg.Every {
		s.suppressed++
		return 0, false
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return n, true
}

// forget drops the sources whose interval is over (what they had
// suppressed stays counted in the metric).
func (l *Log) forget(now time.Time) {
	for k, s := range l.sources {
		if now.Sub(s.last) >= l.cfg.Every {
			delete(l.sources, k)
		}
	}
}
