// Package sse writes Server-Sent Events streams (the text/event-stream
// format of the HTML standard) for the event logs both sides of Outpost
// serve: the appliance's own and, at central, each site's.
//
// A Writer frames events and keep-alive comments; Tail follows a log
// whose entries carry increasing sequence numbers, sending each entry
// with its number as the event id, so that a client that lost the stream
// resumes after the last id it saw (?since=, or the Last-Event-ID header
// a browser's EventSource sends by itself; see Resume).
package sse

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults of Tail.
const (
	// DefaultKeepAlive is the idle time after which a comment keeps a
	// stream (and the proxies on its way) alive.
	DefaultKeepAlive = 15 * time.Second
	// DefaultWriteTimeout bounds the writes of each round of events.
	DefaultWriteTimeout = 30 * time.Second
)

// ErrNoFlush is Start's error for a response writer that cannot flush,
// and so cannot stream.
var ErrNoFlush = errors.New("sse: response writer cannot stream")

// Writer writes one event stream. Once a write or flush fails, every
// later call returns that error.
type Writer struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

// Start answers 200 with the headers of an event stream and flushes
// them. It writes nothing and returns ErrNoFlush when w cannot flush.
func Start(w http.ResponseWriter) (*Writer, error) {
	if !canFlush(w) {
		return nil, ErrNoFlush
	}
	sw := &Writer{w: w, rc: http.NewResponseController(w)}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sw.Flush() // a client already gone shows at the next call
	return sw, nil
}

// canFlush reports whether w, or a writer it wraps, can flush (as
// http.ResponseController looks for one).
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// Event writes one event: its id and name unless empty (neither may
// hold a line break), then data, a "data:" line for each of its lines,
// so that a client reads data back as it was. It does not flush.
func (w *Writer) Event(id, name string, data []byte) error {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	for _, line := range strings.Split(string(data), "\n") {
		b.WriteString("data: " + strings.TrimSuffix(line, "\r") + "\n")
	}
	b.WriteString("\n")
	return w.write(b.String())
}

// Comment writes a comment, which clients ignore: a keep-alive. It does
// not flush.
func (w *Writer) Comment(text string) error {
	return w.write(": " + text + "\n\n")
}

func (w *Writer) write(s string) error {
	if w.err == nil {
		_, w.err = io.WriteString(w.w, s)
	}
	return w.err
}

// Flush sends what was written to the client.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.rc.Flush()
	}
	return w.err
}

// SetWriteDeadline bounds the writes until t (where the server supports
// deadlines; elsewhere it does nothing).
func (w *Writer) SetWriteDeadline(t time.Time) {
	_ = w.rc.SetWriteDeadline(t)
}

// Resume returns the sequence number a client resumes after: the
// Last-Event-ID header when it holds one, else since (the request's own
// cursor, such as ?since=).
func Resume(r *http.Request, since uint64) uint64 {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if id, err := strconv.ParseUint(v, 10, 64); err == nil {
			return id
		}
	}
	return since
}

// Tail follows a log of entries of type T numbered by increasing
// sequence numbers.
type Tail[T any] struct {
	// Read returns up to Page entries after since, oldest first, and a
	// channel closed at the next change to the log. The channel must be
	// taken before the entries are read, so that no change is missed.
	Read func(since uint64) (changed <-chan struct{}, entries []T, err error)
	// Seq is an entry's sequence number, its event id.
	Seq func(T) uint64
	// Name is the event name of every entry ("event" in Outpost).
	Name string
	// Page is the most entries Read returns: a full page is followed by
	// another Read at once. Zero means Read returns every entry.
	Page int
	// KeepAlive is the idle time after which a comment is sent
	// (DefaultKeepAlive if zero).
	KeepAlive time.Duration
	// WriteTimeout bounds the writes of each round (DefaultWriteTimeout
	// if zero).
	WriteTimeout time.Duration
}

// Follow sends the entries after since, each as JSON, then each new one
// as Read finds it, with a keep-alive comment when the stream is idle,
// until ctx ends or the client goes away (a write fails): it returns nil
// then. It returns Read's error when Read fails.
func (t Tail[T]) Follow(ctx context.Context, w *Writer, since uint64) error {
	timeout := cmp.Or(t.WriteTimeout, DefaultWriteTimeout)
	ticker := time.NewTicker(cmp.Or(t.KeepAlive, DefaultKeepAlive))
	defer ticker.Stop()
	for {
		changed, entries, err := t.Read(since)
		if err != nil {
			return err
		}
		w.SetWriteDeadline(time.Now().Add(timeout))
		for _, e := range entries {
			seq := t.Seq(e)
			data, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("sse: encode entry %d: %w", seq, err)
			}
			if w.Event(strconv.FormatUint(seq, 10), t.Name, data) != nil {
				return nil
			}
			since = seq
		}
		if w.Flush() != nil {
			return nil
		}
		if t.Page > 0 && len(entries) >= t.Page {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-ticker.C:
			if w.Comment("heartbeat") != nil || w.Flush() != nil {
				return nil
			}
		}
	}
}
