package sol

import (
	"fmt"
	"time"
)

// Viewer is one watcher of a machine's console: an io.ReadWriteCloser
// of terminal bytes, with the session's Status beside it. Read, Write
// and Close may be called from different goroutines (a websocket
// handler reads in one and writes in another).
type Viewer struct {
	s       *session
	wake    chan struct{} // capacity 1: bytes to read, or the end
	changed chan struct{} // capacity 1: Status changed

	// Guarded by s.mu.
	pending []byte // bytes not read yet
	writer  bool
	notice  string
	err     error // why the viewer ended; nil while attached
}

// Status is a session as one viewer sees it.
type Status struct {
	Machine string `json:"machine"`
	// State is the link to the BMC.
	State State `json:"state"`
	// Error is why the link last failed (Reconnecting), without secrets.
	Error string `json:"error,omitempty"`
	// Since is when this node opened the session: the scrollback holds
	// nothing older, and nothing a previous leader's session held.
	Since time.Time `json:"since"`
	// Writer says whether this viewer has the keyboard.
	Writer bool `json:"writer"`
	// Viewers counts the session's viewers.
	Viewers int `json:"viewers"`
	// Notice is news for this viewer, such as losing the keyboard.
	Notice string `json:"notice,omitempty"`
}

func newViewer(s *session) *Viewer {
	return &Viewer{s: s, wake: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

// Read reads the console: first the scrollback the session held when
// the viewer attached, then what the console prints. Once the viewer has
// ended it returns why: ErrClosed after Close, ErrNotLeader when this
// node stopped leading, ErrTooSlow, or the error that ended the session.
func (v *Viewer) Read(p []byte) (int, error) {
	for {
		v.s.mu.Lock()
		if len(v.pending) > 0 {
			n := copy(p, v.pending)
			v.pending = v.pending[n:]
			if len(v.pending) == 0 {
				v.pending = nil
			}
			v.s.mu.Unlock()
			return n, nil
		}
		err := v.err
		v.s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		<-v.wake
	}
}

// Write sends keystrokes to the console. It fails with ErrReadOnly
// unless the viewer has the keyboard, and with ErrNotConnected while the
// link to the BMC is down or if it fails under them (keystrokes are not
// kept for later).
func (v *Viewer) Write(p []byte) (int, error) {
	v.s.mu.Lock()
	err, writer, st := v.err, v.writer, v.s.stream
	v.s.mu.Unlock()
	switch {
	case err != nil:
		return 0, err
	case !writer:
		return 0, ErrReadOnly
	case st == nil:
		return 0, ErrNotConnected
	}
	n, err := st.Write(p)
	if err != nil {
		// The link failed under the keystrokes; the session reconnects.
		return n, fmt.Errorf("%w: %v", ErrNotConnected, err)
	}
	return n, nil
}

// Close detaches the viewer; the session stays open for others, and for
// Config.Linger once none is left. Read then returns ErrClosed. It is
// safe to call more than once.
func (v *Viewer) Close() error {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	v.s.removeLocked(v, ErrClosed)
	return nil
}

// Status returns the session's state as this viewer sees it.
func (v *Viewer) Status() Status {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Machine: s.machine, State: s.state, Error: s.lastErr, Since: s.since,
		Writer: v.writer, Viewers: len(s.viewers), Notice: v.notice}
	if v.err != nil {
		st.State, st.Writer = Closed, false
	}
	return st
}

// Changed receives a value when Status may have changed.
func (v *Viewer) Changed() <-chan struct{} { return v.changed }

// end marks the viewer ended with why and wakes its reader; s.mu is
// held.
func (v *Viewer) end(why error) {
	if v.err != nil {
		return
	}
	v.err, v.writer = why, false
	signal(v.wake)
	signal(v.changed)
}
