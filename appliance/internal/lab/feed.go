package lab

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// maxFeedLines bounds the unconsumed lines a feed keeps in memory; the
// oldest are dropped beyond it (the log files keep everything).
const maxFeedLines = 100_000

// feed holds the lines of a process's output (one or two streams) not yet
// consumed by a wait, in arrival order. Lines of different streams may
// arrive out of the order they were written in (they come through separate
// pipes), so a match consumes lines of its own stream only.
type feed struct {
	mu      sync.Mutex
	lines   []feedLine // ascending seq
	nextSeq int
	wake    chan struct{} // closed and replaced when a line arrives or the feed closes
	closed  bool
}

type feedLine struct {
	seq    int
	stream int
	text   string
}

func newFeed() *feed { return &feed{wake: make(chan struct{})} }

func (f *feed) add(stream int, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, feedLine{seq: f.nextSeq, stream: stream, text: text})
	f.nextSeq++
	if len(f.lines) > maxFeedLines {
		f.lines = append([]feedLine(nil), f.lines[len(f.lines)-maxFeedLines/2:]...)
	}
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	close(f.wake)
	f.wake = make(chan struct{})
}

// match looks for a line matching re among those that arrived at or after
// sequence number from. On a match it consumes the lines of the matching
// line's stream up to and including it, and returns it with a nil wake.
// Otherwise it returns the number to continue from, a channel closed when
// more lines arrive, and whether no more will.
func (f *feed) match(re *regexp.Regexp, from int) (text string, next int, wake <-chan struct{}, closed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := sort.Search(len(f.lines), func(i int) bool { return f.lines[i].seq >= from })
	for i := start; i < len(f.lines); i++ {
		l := f.lines[i]
		if !re.MatchString(l.text) {
			continue
		}
		kept := f.lines[:0]
		for j, m := range f.lines {
			if j > i || m.stream != l.stream {
				kept = append(kept, m)
			}
		}
		clear(f.lines[len(kept):])
		f.lines = kept
		return l.text, 0, nil, false
	}
	return "", f.nextSeq, f.wake, f.closed
}

// lineWriter copies a stream to a file and its lines to a feed.
type lineWriter struct {
	f       *os.File
	feed    *feed
	stream  int // which of the process's streams this is
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if _, err := w.f.Write(p); err != nil {
		return 0, err
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.feed.add(w.stream, strings.TrimRight(string(w.partial[:i]), "\r"))
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) == 0 {
		w.partial = nil
	}
	return len(p), nil
}

// flushPartial feeds a last line that has no line ending.
func (w *lineWriter) flushPartial() {
	if len(w.partial) > 0 {
		w.feed.add(w.stream, strings.TrimRight(string(w.partial), "\r"))
		w.partial = nil
	}
}

// tail returns the last n lines of the file at path, or a note why not.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) == 0 {
		return "(empty)"
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
