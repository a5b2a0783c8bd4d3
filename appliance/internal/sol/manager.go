package sol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/seal"
)

// Errors a viewer ends with, or Attach and Write return.
var (
	ErrNotLeader    = errors.New("sol: this node does not lead the site; the serial consoles are held by the leader")
	ErrClosed       = errors.New("sol: closed")
	ErrReadOnly     = errors.New("sol: this viewer may not type: it attached read-only, or another viewer took the keyboard")
	ErrNotConnected = errors.New("sol: the link to the BMC is down; keystrokes are not kept")
	ErrTooSlow      = errors.New("sol: the viewer fell too far behind the console")
)

// Defaults of Config.
const (
	DefaultScrollback  = 256 << 10
	DefaultLinger      = 5 * time.Minute
	DefaultOpenTimeout = 30 * time.Second
	DefaultLeaderCheck = 250 * time.Millisecond
)

// DefaultBackoff is the reconnection schedule of a session whose BMC
// link failed.
var DefaultBackoff = backoff.Exponential{Base: time.Second, Max: 30 * time.Second}

// Target is one machine's BMC with its password in the clear, for one
// connection. Printed (any fmt verb) or logged (slog), it hides the
// password.
type Target struct {
	Machine string
	// Address is the BMC's host, with or without a port (IPMI's 623).
	Address  string
	Username string
	Password string
}

func (t Target) String() string {
	return fmt.Sprintf("BMC %s of %s (user %s)", t.Address, t.Machine, t.Username)
}

// Format prints String for every verb, %#v included.
func (t Target) Format(f fmt.State, verb rune) { io.WriteString(f, t.String()) }

// LogValue logs t without its password.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("machine", t.Machine), slog.String("address", t.Address), slog.String("username", t.Username))
}

// BMC opens serial-over-LAN streams (IPMI does; tests use fakes).
type BMC interface {
	// Open activates the console of t's machine. The stream lives until
	// it is closed or fails, whatever becomes of ctx, which bounds the
	// opening only.
	Open(ctx context.Context, t Target) (Stream, error)
}

// Stream is one open console: Read returns what it prints (an error
// once the link fails), Write sends keystrokes, Close releases it at the
// BMC. Close may be called more than once, and while Read or Write
// blocks, which it ends.
type Stream = io.ReadWriteCloser

// Leader says whether this node leads the site (the cluster node does).
type Leader interface {
	IsLeader() bool
}

// Config configures a Manager.
type Config struct {
	// Store is this node's store, which machines' BMCs are read from.
	Store *store.DB
	// Key opens the sealed BMC passwords (the site key).
	Key *seal.Key
	// Leader tells whether this node may hold sessions.
	Leader Leader
	// BMC opens the consoles. Default: IPMI{}.
	BMC BMC
	// Scrollback is how many bytes of a console a session keeps for the
	// viewers who attach later, and how far a viewer may fall behind.
	// Default DefaultScrollback (256 KiB).
	Scrollback int
	// Linger is how long a session stays open with no viewer. Default
	// DefaultLinger (5 minutes).
	Linger time.Duration
	// OpenTimeout bounds one opening of a BMC link (the login and the
	// payload's activation). Default DefaultOpenTimeout (30 s).
	OpenTimeout time.Duration
	// Backoff spaces a session's reconnections after failures. Default
	// DefaultBackoff (1 s doubling up to 30 s, jittered).
	Backoff backoff.Exponential
	// LeaderCheck is how often Run checks that this node still leads.
	// Default DefaultLeaderCheck (250 ms).
	LeaderCheck time.Duration
	Log         *slog.Logger
}

// Manager holds this node's sessions, one per machine.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // every session's parent; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the sessions' goroutines

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
}

// New returns a Manager; Run makes it follow the node's leadership.
func New(cfg Config) *Manager {
	if cfg.BMC == nil {
		cfg.BMC = IPMI{}
	}
	if cfg.Scrollback <= 0 {
		cfg.Scrollback = DefaultScrollback
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = DefaultOpenTimeout
	}
	if cfg.Backoff == (backoff.Exponential{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.LeaderCheck <= 0 {
		cfg.LeaderCheck = DefaultLeaderCheck
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, log: cfg.Log, ctx: ctx, cancel: cancel, sessions: map[string]*session{}}
}

// Run closes every session whenever this node does not lead, until ctx
// ends; then it closes the Manager.
func (m *Manager) Run(ctx context.Context) error {
	defer m.Close()
	tick := time.NewTicker(m.cfg.LeaderCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if !m.cfg.Leader.IsLeader() {
			m.closeAll(ErrNotLeader)
		}
	}
}

// Close closes every session, and waits until their BMC links are
// released; Attach then fails with ErrClosed. It is safe to call more
// than once.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.closeAll(ErrClosed)
	m.cancel()
	m.wg.Wait()
}

// Attach adds a viewer to machine's session, opening it if there is
// none. With writer set the viewer gets the keyboard (see the package
// doc); the caller has checked that its user may have it. ctx bounds
// the attaching only: the viewer lives until it is closed or its
// session ends. A machine that does not exist is errs.NotFound, one with
// no IPMI BMC errs.Conflict.
func (m *Manager) Attach(ctx context.Context, machineID string, writer bool) (*Viewer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !m.cfg.Leader.IsLeader() {
		return nil, ErrNotLeader
	}
	// The machine must be one the session can open: say so now rather
	// than through a session that fails forever.
	if _, err := m.target(machineID); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	s := m.sessions[machineID]
	if s == nil {
		s = m.open(machineID)
	}
	return s.attach(writer), nil
}

// open starts machine's session; m.mu is held.
func (m *Manager) open(machine string) *session {
	s := newSession(m, machine)
	m.sessions[machine] = s
	m.log.Info("sol: session opened", "machine", machine)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		s.run()
	}()
	return s
}

// drop ends s, if it is still machine's session, with why.
func (m *Manager) drop(s *session, why error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[s.machine] == s {
		delete(m.sessions, s.machine)
	}
	s.end(why)
}

// dropIdle ends s if it has had no viewer since the timer of generation
// gen started.
func (m *Manager) dropIdle(s *session, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !s.idleSince(gen) {
		return
	}
	if m.sessions[s.machine] == s {
		delete(m.sessions, s.machine)
	}
	s.end(errIdle)
}

// errIdle ends a session nobody watched for Config.Linger (it has no
// viewer to tell).
var errIdle = errors.New("sol: no viewer")

// closeAll ends every session with why.
func (m *Manager) closeAll(why error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.sessions {
		delete(m.sessions, id)
		s.end(why)
	}
}

// target reads machine id's BMC and opens its password.
func (m *Manager) target(id string) (Target, error) {
	var mach *store.Machine
	if err := m.cfg.Store.View(func(tx *store.Tx) (err error) {
		mach, err = store.Get[store.Machine](tx, id)
		return err
	}); err != nil {
		return Target{}, err
	}
	b := mach.BMC
	if b == nil || b.Address == "" {
		return Target{}, errs.Conflict("machine %s has no BMC: its serial console is reached through its BMC", id)
	}
	if strings.EqualFold(b.Driver, "redfish") {
		return Target{}, errs.Conflict("machine %s's BMC is driven over Redfish: its serial console needs IPMI (driver ipmi)", id)
	}
	t := Target{Machine: id, Address: b.Address, Username: b.Username}
	if len(b.SealedPassword) > 0 {
		pw, err := m.cfg.Key.Open(b.SealedPassword, store.BMCPasswordAD(id))
		if err != nil {
			// Never the sealed bytes or the key: only what failed.
			return Target{}, fmt.Errorf("machine %s: the BMC password does not open with the site key", id)
		}
		t.Password = string(pw)
	}
	return t, nil
}

// redact removes secret from err's message.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}
