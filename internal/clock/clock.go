// Package clock is the wall clock a daemon reads for the decisions it
// stores (a lease's expiry, a token's, a workflow's deadline), with a
// lab-only hook that steps it.
//
// A real appliance's clock steps when NTP corrects it; a lab machine's
// clock is shared by every process on it and must not be stepped. So a
// test names a file (OffsetEnv) that holds a signed duration, such as
// "-1h" or "90m", and Now is the host's wall clock plus that offset: the
// file is the only thing the hook reads, an offset is all it can change,
// and without the variable Now is time.Now. The file may be missing or
// empty (offset 0) and is read again at most every rereadEvery, so a test
// steps the clock of a running daemon by writing the file.
//
// Durations the daemon measures itself (timers, tickers, timeouts,
// time.Since of time.Now) keep Go's monotonic clock and do not see the
// step, as on a real machine; only times read from a Clock do.
package clock

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OffsetEnv names the environment variable that points a daemon's clock
// at an offset file: a test hook, off when unset.
const OffsetEnv = "OUTPOST_LAB_CLOCK_OFFSET_FILE"

// MaxOffset bounds an offset file's value: a step of more than a year is
// a typo, not a test.
const MaxOffset = 366 * 24 * time.Hour

// rereadEvery is how stale the offset may be: the file is read at most
// this often, so Now costs a stat-free atomic load on the hot path.
const rereadEvery = 100 * time.Millisecond

// Clock reads the wall clock, plus a lab offset when it has a file. The
// zero Clock and a nil *Clock are the host's clock.
type Clock struct {
	path   string
	offset atomic.Int64 // nanoseconds
	mu     sync.Mutex   // one reader of the file at a time
	read   time.Time    // when the file was last read (monotonic)
	err    atomic.Pointer[error]
}

// System is the host's clock, without an offset.
var System = &Clock{}

// FromEnv is the clock a daemon uses: the host's, or, when OffsetEnv
// names a file, one offset by that file (FromFile).
func FromEnv() (*Clock, error) {
	path := os.Getenv(OffsetEnv)
	if path == "" {
		return System, nil
	}
	return FromFile(path)
}

// FromFile is a clock offset by the duration in the file at path (see
// the package doc). A file that exists and does not hold a duration
// within MaxOffset is an error here; later, a bad value keeps the offset
// read before it, and Err says why.
func FromFile(path string) (*Clock, error) {
	c := &Clock{path: path}
	if err := c.reread(time.Now()); err != nil {
		return nil, err
	}
	return c, nil
}

// Now is the wall clock plus the offset.
func (c *Clock) Now() time.Time {
	now := time.Now()
	if c == nil || c.path == "" {
		return now
	}
	c.maybeReread(now)
	return now.Add(time.Duration(c.offset.Load()))
}

// Offset is the offset now applied (0 for the host's clock).
func (c *Clock) Offset() time.Duration {
	if c == nil || c.path == "" {
		return 0
	}
	c.maybeReread(time.Now())
	return time.Duration(c.offset.Load())
}

// Monotonic is a clock that never steps: the time elapsed since this
// call, on Go's monotonic clock. Against it a user of Now sees steps.
func Monotonic() func() time.Duration {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }
}

// Err is why the offset file's last reading was not taken, or nil.
func (c *Clock) Err() error {
	if c == nil {
		return nil
	}
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// maybeReread reads the file again if the last reading is older than
// rereadEvery; a caller that finds another reading it goes on with the
// offset it has.
func (c *Clock) maybeReread(now time.Time) {
	if !c.mu.TryLock() {
		return
	}
	stale := c.read.IsZero() || now.Sub(c.read) >= rereadEvery
	c.mu.Unlock()
	if stale {
		_ = c.reread(now)
	}
}

// reread reads the offset file into c.offset, or records why not.
func (c *Clock) reread(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = now
	off, err := ReadOffset(c.path)
	if err != nil {
		c.err.Store(&err)
		return err
	}
	c.err.Store(nil)
	c.offset.Store(int64(off))
	return nil
}

// ReadOffset reads an offset file: a missing or empty file is 0.
func ReadOffset(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("clock: read the offset file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("clock: offset file %s holds %q, not a duration such as -1h or 90m", path, s)
	}
	if d > MaxOffset || d < -MaxOffset {
		return 0, fmt.Errorf("clock: offset file %s holds %v, beyond ±%v", path, d, MaxOffset)
	}
	return d, nil
}

// WriteOffset steps a clock that reads path to d, atomically (a reader
// sees the old offset or the new one, never a torn file).
func WriteOffset(path string, d time.Duration) error {
	if d > MaxOffset || d < -MaxOffset {
		return fmt.Errorf("clock: offset %v beyond ±%v", d, MaxOffset)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(d.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("clock: write the offset: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("clock: write the offset: %w", err)
	}
	return nil
}
