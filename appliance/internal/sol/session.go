package sol

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/errs"
)

// State is a session's link to the BMC.
type State string

// States of a session.
const (
	// Connecting: the session is opening its first link.
	Connecting State = "connecting"
	// Connected: the console's bytes flow.
	Connected State = "connected"
	// Reconnecting: the link failed (Status.Error says how) and the
	// session opens it again.
	Reconnecting State = "reconnecting"
	// Closed: the session has ended (the viewer ends with why).
	Closed State = "closed"
)

// session is one machine's console on this node.
type session struct {
	m       *Manager
	machine string
	log     *slog.Logger
	ctx     context.Context // ends with the session
	cancel  context.CancelFunc
	since   time.Time

	// mu guards the rest, and the viewers' shared fields. Lock order:
	// Manager.mu, then mu.
	mu      sync.Mutex
	ring    *ring
	viewers map[*Viewer]struct{}
	writer  *Viewer
	stream  Stream // nil while the link is down
	state   State
	lastErr string
	idle    *time.Timer // the linger timer, while nobody watches
	idleGen uint64      // counts linger timers: a stale one does nothing
	ended   error       // why the session ended; nil while it runs
}

func newSession(m *Manager, machine string) *session {
	ctx, cancel := context.WithCancel(m.ctx)
	return &session{
		m: m, machine: machine, log: m.log.With("machine", machine),
		ctx: ctx, cancel: cancel, since: time.Now().UTC(),
		ring: newRing(m.cfg.Scrollback), viewers: map[*Viewer]struct{}{}, state: Connecting,
	}
}

// run keeps the link to the BMC open until the session ends.
func (s *session) run() {
	failures := 0
	for {
		began := time.Now()
		connected, err := s.connect()
		if s.ctx.Err() != nil {
			return
		}
		if _, domain := errs.AsError(err); domain {
			// The machine is gone, or has no BMC any more.
			s.log.Info("sol: session ends", "err", err)
			s.m.drop(s, err)
			return
		}
		if connected && time.Since(began) > s.m.cfg.Backoff.Max {
			failures = 0 // a link that held a while starts the schedule over
		}
		failures++
		wait := s.m.cfg.Backoff.Wait(failures)
		s.setLink(nil, Reconnecting, err)
		s.log.Warn("sol: BMC link failed; reconnecting", "err", err, "failures", failures, "wait", wait)
		if !backoff.Sleep(s.ctx, wait) {
			return
		}
		if !s.m.cfg.Leader.IsLeader() {
			s.m.drop(s, ErrNotLeader)
			return
		}
	}
}

// connect opens a link and copies the console into the session until
// the link fails or the session ends.
func (s *session) connect() (connected bool, err error) {
	t, err := s.m.target(s.machine)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.m.cfg.OpenTimeout)
	st, err := s.m.cfg.BMC.Open(ctx, t)
	cancel()
	if err != nil {
		return false, redact(err, t.Password)
	}
	// The session's end closes the stream, which ends the Read below.
	stop := context.AfterFunc(s.ctx, func() { st.Close() })
	defer func() {
		stop()
		st.Close()
	}()
	s.setLink(st, Connected, nil)
	s.log.Info("sol: BMC link up", "bmc", t)
	buf := make([]byte, 4096)
	for {
		n, rerr := st.Read(buf)
		if n > 0 {
			s.deliver(buf[:n])
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = errors.New("the BMC ended the console session")
			}
			return true, redact(rerr, t.Password)
		}
	}
}

// setLink records the link's state.
func (s *session) setLink(st Stream, state State, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended != nil {
		return
	}
	s.stream, s.state, s.lastErr = st, state, ""
	if err != nil {
		s.lastErr = err.Error()
	}
	s.notifyLocked()
}

// deliver adds what the console printed to the scrollback and to every
// viewer's unread bytes.
func (s *session) deliver(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring.Write(p)
	for v := range s.viewers {
		// One read (at most 4 KiB) always fits a viewer that has read
		// everything, whatever the scrollback's size.
		if len(v.pending) > 0 && len(v.pending)+len(p) > s.m.cfg.Scrollback {
			s.removeLocked(v, ErrTooSlow)
			continue
		}
		v.pending = append(v.pending, p...)
		signal(v.wake)
	}
}

// attach adds a viewer with the scrollback as its first bytes.
func (s *session) attach(writer bool) *Viewer {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := newViewer(s)
	v.pending = s.ring.Bytes()
	s.viewers[v] = struct{}{}
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	if writer {
		if old := s.writer; old != nil {
			old.writer = false
			old.notice = "another viewer took the keyboard"
		}
		s.writer, v.writer = v, true
	}
	s.notifyLocked()
	return v
}

// removeLocked detaches v with why; once nobody watches, the linger
// timer starts.
func (s *session) removeLocked(v *Viewer, why error) {
	if _, ok := s.viewers[v]; !ok {
		return
	}
	delete(s.viewers, v)
	v.end(why)
	if s.writer == v {
		s.writer = nil
	}
	if len(s.viewers) == 0 && s.ended == nil {
		s.idleGen++
		gen := s.idleGen
		s.idle = time.AfterFunc(s.m.cfg.Linger, func() { s.m.dropIdle(s, gen) })
	}
	s.notifyLocked()
}

// idleSince reports whether nobody has attached since the linger timer
// of generation gen started.
func (s *session) idleSince(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended == nil && len(s.viewers) == 0 && s.idle != nil && s.idleGen == gen
}

// end ends the session with why: its viewers end, its link closes.
func (s *session) end(why error) {
	s.mu.Lock()
	if s.ended != nil {
		s.mu.Unlock()
		return
	}
	s.ended, s.state, s.stream = why, Closed, nil
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	for v := range s.viewers {
		v.end(why)
	}
	s.viewers, s.writer = nil, nil
	s.mu.Unlock()
	s.cancel()
	s.log.Info("sol: session closed", "why", why)
}

// notifyLocked tells every viewer that the status changed.
func (s *session) notifyLocked() {
	for v := range s.viewers {
		signal(v.changed)
	}
}

// signal wakes whoever waits on c, a channel of capacity one.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
