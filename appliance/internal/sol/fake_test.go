package sol_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/sol"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/seal"
)

// password is the BMC password of the machines of the unit tests.
const password = "sol-secret-8c1f"

// fakeBMC opens fakeStreams, or fails with fail while it is set.
type fakeBMC struct {
	mu      sync.Mutex
	fail    error
	targets []sol.Target
	opened  chan *fakeStream
}

func newFakeBMC() *fakeBMC { return &fakeBMC{opened: make(chan *fakeStream, 16)} }

func (f *fakeBMC) Open(ctx context.Context, t sol.Target) (sol.Stream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = append(f.targets, t)
	if f.fail != nil {
		return nil, f.fail
	}
	s := &fakeStream{closed: make(chan struct{})}
	s.pr, s.pw = io.Pipe()
	f.opened <- s
	return s, nil
}

func (f *fakeBMC) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeBMC) opens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.targets)
}

// next is the stream opened next.
func (f *fakeBMC) next(t *testing.T) *fakeStream {
	t.Helper()
	select {
	case s := <-f.opened:
		return s
	case <-time.After(time.Hour): // fake time: only when nothing else can happen
		t.Fatal("no console was opened")
		return nil
	}
}

// fakeStream is a console: print is what it shows, typed what it got.
type fakeStream struct {
	pr       *io.PipeReader
	pw       *io.PipeWriter
	mu       sync.Mutex
	typed    []byte
	writeErr error // keystrokes fail with it, if set
	closed   chan struct{}
	once     sync.Once
}

func (s *fakeStream) Read(p []byte) (int, error) { return s.pr.Read(p) }

func (s *fakeStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	s.typed = append(s.typed, p...)
	return len(p), nil
}

// breakWrites makes keystrokes fail with err, as a link failing under
// them.
func (s *fakeStream) breakWrites(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeErr = err
}

func (s *fakeStream) Close() error {
	s.once.Do(func() {
		s.pr.Close()
		close(s.closed)
	})
	return nil
}

// print shows text on the console; it returns once the session read it.
func (s *fakeStream) print(t *testing.T, text string) {
	t.Helper()
	if _, err := io.WriteString(s.pw, text); err != nil {
		t.Fatalf("console print %q: %v", text, err)
	}
}

// fail breaks the link.
func (s *fakeStream) fail(err error) { s.pw.CloseWithError(err) }

func (s *fakeStream) got() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.typed)
}

func (s *fakeStream) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// leader is a node's leadership, set by the test.
type leader struct{ atomic.Bool }

func (l *leader) IsLeader() bool { return l.Load() }

// env is a Manager over a store (see inBubble), with a fake BMC.
type env struct {
	db     *store.DB
	bmc    *fakeBMC
	leader *leader
	logs   *apptest.SyncBuffer
	m      *sol.Manager
}

// openStore opens an empty store, and makes a site key.
func openStore(t *testing.T) (*store.DB, *seal.Key) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return db, key
}

// bmcMachine is a machine whose IPMI BMC at addr has the password pw,
// sealed with key.
func bmcMachine(key *seal.Key, id string, mac int, addr, user, pw string) *store.Machine {
	m := apptest.Machine(id, mac)
	m.BMC = &store.BMC{Address: addr, Driver: "ipmi", Username: user, SealedPassword: key.Seal([]byte(pw), store.BMCPasswordAD(id))}
	return m
}

// inBubble runs f in a synctest bubble with a Manager of cfg (see
// start) over a store, opened outside the bubble, with three machines:
// m1 (an IPMI BMC with password), nobmc, and rf (a Redfish BMC).
func inBubble(t *testing.T, cfg sol.Config, f func(t *testing.T, e *env)) {
	t.Helper()
	db, key := openStore(t)
	rf := apptest.Machine("rf", 3)
	rf.BMC = &store.BMC{Address: "192.0.2.11", Driver: "redfish", Username: "admin"}
	apptest.Put(t, db, time.Now(), bmcMachine(key, "m1", 1, "192.0.2.10", "admin", password), apptest.Machine("nobmc", 2), rf)
	synctest.Test(t, func(t *testing.T) { f(t, start(t, db, key, cfg)) })
}

// start runs a Manager in the test's bubble; cfg's Store, Key, Leader,
// BMC and Log are filled in.
func start(t *testing.T, db *store.DB, key *seal.Key, cfg sol.Config) *env {
	t.Helper()
	e := &env{db: db, bmc: newFakeBMC(), leader: &leader{}, logs: &apptest.SyncBuffer{}}
	e.leader.Store(true)
	cfg.Store, cfg.Key, cfg.Leader, cfg.BMC = db, key, e.leader, e.bmc
	cfg.Log = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Backoff == (backoff.Exponential{}) {
		cfg.Backoff = backoff.Exponential{Base: time.Second, Max: 4 * time.Second}
	}
	e.m = run(t, cfg)
	return e
}

// run runs a Manager of cfg until the test ends.
func run(t *testing.T, cfg sol.Config) *sol.Manager {
	m := sol.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Close() })
	return m
}

// open attaches the first viewer of machine, which opens its console.
func (e *env) open(t *testing.T, machine string, writer bool) (*sol.Viewer, *fakeStream) {
	t.Helper()
	v := e.attach(t, machine, writer)
	return v, e.bmc.next(t)
}

func (e *env) attach(t *testing.T, machine string, writer bool) *sol.Viewer {
	t.Helper()
	v, err := e.m.Attach(context.Background(), machine, writer)
	if err != nil {
		t.Fatalf("attach %s: %v", machine, err)
	}
	return v
}

// deleteMachine deletes a machine from the store.
func (e *env) deleteMachine(t *testing.T, id string) {
	t.Helper()
	apptest.Apply(t, e.db, site.DeleteMachine, site.Delete{Key: id, Time: time.Now()})
}

// readUntil reads v until what it read holds want, and returns it all.
func readUntil(t *testing.T, v *sol.Viewer, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 1024)
	for !bytes.Contains(got, []byte(want)) {
		n, err := v.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading until %q: read %q, then %v", want, got, err)
		}
	}
	return string(got)
}

// readEnd reads v to its end and returns what it read and why it ended.
func readEnd(v *sol.Viewer) (string, error) {
	var got []byte
	buf := make([]byte, 1024)
	for {
		n, err := v.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return string(got), err
		}
	}
}

// errLink is a broken BMC link.
var errLink = errors.New("IPMI LAN: deadline exceeded while exchanging with BMC")
