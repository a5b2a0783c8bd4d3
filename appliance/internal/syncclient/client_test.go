package syncclient

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/syncproto"
)

const testCredential = "site-credential-0123456789abcdef"

// env is one appliance node and a fake central.
type env struct {
	t    *testing.T
	n    *apptest.Node
	f    *fakeCentral
	logs *apptest.SyncBuffer
	cred string // the credential file
}

func newEnv(t *testing.T, credential string) *env {
	e := &env{t: t, n: apptest.Start(t), f: newFakeCentral(t, testCredential), logs: &apptest.SyncBuffer{}}
	e.cred = filepath.Join(t.TempDir(), "site.credential")
	if err := os.WriteFile(e.cred, []byte(credential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run starts a client and stops it when the test ends; stop stops it now.
func (e *env) run(tune func(*Config)) (c *Client, stop func()) {
	e.t.Helper()
	cfg := Config{Node: e.n.Site, Store: e.n.DB, URL: e.f.srv.URL, RootCAs: e.f.roots(), Site: "ams2", CredentialFile: e.cred,
		Log:        slog.New(slog.NewTextHandler(io.MultiWriter(e.logs, e.t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, LongBackoff: time.Second}
	if tune != nil {
		tune(&cfg)
	}
	return start(e.t, cfg)
}

// start runs a client of cfg until the test ends; stop stops it now.
func start(t *testing.T, cfg Config) (c *Client, stop func()) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// appendEvents records n events on the appliance.
func (e *env) appendEvents(n int, kind string) {
	e.t.Helper()
	if err := recordEvents(e.t.Context(), e.n.Site, n, kind); err != nil {
		e.t.Fatal(err)
	}
}

// eventRecorder is the proposer's method that records events.
type eventRecorder interface {
	RecordEvents(ctx context.Context, events []store.Event) (uint64, error)
}

// recordEvents records n events of kind through the proposer, up to 500
// in one command.
func recordEvents(ctx context.Context, r eventRecorder, n int, kind string) error {
	for i := 0; i < n; {
		evs := make([]store.Event, min(n-i, 500))
		for k := range evs {
			evs[k] = store.Event{Kind: kind, Message: fmt.Sprintf("%s %d", kind, i+k)}
		}
		if _, err := r.RecordEvents(ctx, evs); err != nil {
			return err
		}
		i += len(evs)
	}
	return nil
}

func (e *env) syncState() store.SyncState {
	var s store.SyncState
	_ = e.n.DB.View(func(tx *store.Tx) error { s = tx.SyncState(); return nil })
	return s
}

func (e *env) events() []*store.Event {
	e.t.Helper()
	var out []*store.Event
	if err := e.n.DB.View(func(tx *store.Tx) (err error) { out, err = tx.EventsSince(0, 1<<20); return err }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// checkStored checks that central stored exactly the site's events, in
// order, each once.
func (e *env) checkStored() {
	e.t.Helper()
	site := e.events()
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	if len(e.f.stored) != len(site) {
		e.t.Fatalf("central stored %d events, the site has %d", len(e.f.stored), len(site))
	}
	for i, got := range e.f.stored {
		var ev store.Event
		if err := json.Unmarshal(got.Data, &ev); err != nil {
			e.t.Fatalf("event %d: %v", got.Seq, err)
		}
		if got.Seq != uint64(i+1) || ev.Seq != got.Seq || ev.Kind != site[i].Kind || ev.Message != site[i].Message {
			e.t.Fatalf("central's event %d = seq %d %+v, want %+v", i, got.Seq, ev, site[i])
		}
	}
}

func (e *env) waitStoredAll() {
	e.t.Helper()
	last := e.syncState().LastSeq
	e.f.waitFor(fmt.Sprintf("central to store events up to %d", last), func() bool { return uint64(len(e.f.stored)) >= last })
}

func (e *env) waitSite(what string, cond func(store.SyncState) bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(e.syncState()) {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for the site: %s (sync state %+v)", what, e.syncState())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func change(t *testing.T, kind, key string, obj any) syncproto.Change {
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return syncproto.Change{Kind: kind, Key: key, Object: raw}
}

func countKind(events []*store.Event, kind string) int {
	n := 0
	for _, e := range events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// TestSync: hello with the site's cursors, a revision applied and
// acknowledged, events delivered in order, a cut connection and an
// outage resumed from central's stored sequence with no gap and no
// duplicate, and the cursors in the store afterwards.
func TestSync(t *testing.T) {
	e := newEnv(t, testCredential)
	e.appendEvents(3, "before.sync")
	m := apptest.Machine("m1", 1)
	m.BMC = &store.BMC{Address: "10.0.0.5", Username: "admin", Password: "bmc-secret-pw"}
	e.f.addRevision(change(t, "machine", "m1", m),
		change(t, "order", "o1", &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}))
	_, stop := e.run(nil)

	e.f.waitFor("desired_ack 1", func() bool { return len(e.f.acked) == 1 })
	if h := e.f.hellos[0]; h.Site != "ams2" || h.AppliedRevision != 0 || h.AckedSeq != 0 || h.LastSeq != 3 || h.Versions != syncproto.Supported {
		t.Errorf("first hello = %+v, want site ams2, applied 0, acked 0, last 3", h.LogValue())
	}
	if s := e.syncState(); s.AppliedRevision != 1 {
		t.Errorf("applied revision %d, want 1", s.AppliedRevision)
	}
	_ = e.n.DB.View(func(tx *store.Tx) error {
		o, err := store.Get[store.Order](tx, "o1")
		if err != nil || o.State != store.OrderRunning {
			t.Errorf("order o1 = %+v, %v; want running", o, err)
		}
		got, err := store.Get[store.Machine](tx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		pw, err := e.n.Key.Open(got.BMC.SealedPassword, store.BMCPasswordAD("m1"))
		if got.BMC.Password != "" || err != nil || string(pw) != "bmc-secret-pw" {
			t.Errorf("machine m1's BMC password: clear %q, sealed opens to %q (%v)", got.BMC.Password, pw, err)
		}
		return nil
	})
	e.waitStoredAll()
	e.checkStored()
	last := e.syncState().LastSeq
	e.waitSite("acked seq to reach the last event", func(s store.SyncState) bool { return s.AckedSeq == last })

	// New events flow as they are recorded.
	e.appendEvents(1200, "live")
	e.waitStoredAll()
	e.checkStored()

	// A cut while events flow, then an outage with events recorded.
	during := make(chan error, 1)
	go func() { during <- recordEvents(t.Context(), e.n.Site, 3000, "during.cut") }()
	time.Sleep(5 * time.Millisecond)
	e.f.cut()
	e.f.update(func() { e.f.down = true })
	e.appendEvents(700, "while.down")
	e.f.update(func() { e.f.down = false })
	time.Sleep(100 * time.Millisecond)
	e.appendEvents(1, "after")
	if err := <-during; err != nil {
		t.Fatal(err)
	}
	e.waitStoredAll()
	e.checkStored()
	e.waitSite("acked seq to reach the last event", func(s store.SyncState) bool { return s.AckedSeq == s.LastSeq })
	e.f.mu.Lock()
	hellos := len(e.f.hellos)
	later := e.f.hellos[hellos-1]
	e.f.mu.Unlock()
	if hellos < 2 || later.AppliedRevision != 1 {
		t.Errorf("%d hellos, the last %+v; want a reconnect that names revision 1", hellos, later.LogValue())
	}
	if n := countKind(e.events(), "order.created"); n != 1 {
		t.Errorf("order.created %d times, want once", n)
	}

	// The cursors are in the store file.
	stop()
	want := e.syncState()
	e.n.Node.Close()
	e.n.DB.Close()
	db, err := store.Open(filepath.Join(e.n.Dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got store.SyncState
	_ = db.View(func(tx *store.Tx) error { got = tx.SyncState(); return nil })
	if got != want || got.AppliedRevision != 1 || got.AckedSeq != got.LastSeq {
		t.Errorf("sync state after reopening the store = %+v, want %+v", got, want)
	}
	for _, secret := range []string{testCredential, "bmc-secret-pw"} {
		if strings.Contains(e.logs.String(), secret) || strings.Contains(e.n.Logs.String(), secret) {
			t.Errorf("a secret appears in the logs")
		}
	}
}

// TestSyncTwoLeadersApplyOnce: two sessions that both believe they lead
// receive the same revision; it is applied once.
func TestSyncTwoLeadersApplyOnce(t *testing.T) {
	e := newEnv(t, testCredential)
	m := apptest.Machine("m1", 1)
	m.BMC = &store.BMC{Address: "10.0.0.5"}
	e.f.update(func() { e.f.holdBack = 2 })
	e.f.addRevision(change(t, "machine", "m1", m),
		change(t, "order", "o1", &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}))
	e.run(nil)
	e.run(nil)
	e.f.waitFor("two desired_acks", func() bool { return len(e.f.acked) == 2 })
	if h := e.f.hellos; h[0].AppliedRevision != 0 || h[1].AppliedRevision != 0 {
		t.Errorf("hellos %+v, %+v: want both at revision 0", h[0].LogValue(), h[1].LogValue())
	}
	if n := countKind(e.events(), "order.created"); n != 1 || e.syncState().AppliedRevision != 1 {
		t.Errorf("order.created %d times, applied revision %d; want once, 1", n, e.syncState().AppliedRevision)
	}
	if !strings.Contains(e.logs.String(), "already_applied=true") {
		t.Errorf("no session saw the revision as already applied")
	}
}

// TestSyncUnauthorized: a wrong credential is refused; the client backs
// off long, changes nothing, and never logs the credential.
func TestSyncUnauthorized(t *testing.T) {
	const wrong = "wrong-credential-fedcba9876543210"
	e := newEnv(t, wrong)
	e.f.addRevision(change(t, "image", "debian", map[string]string{"name": "debian", "url": "https://x/d.raw", "format": "raw"}))
	before := e.syncState()
	e.run(func(c *Config) { c.LongBackoff = 2 * time.Second })
	e.f.waitFor("a hello", func() bool { return len(e.f.hellos) >= 1 })
	time.Sleep(700 * time.Millisecond)
	e.f.mu.Lock()
	n := len(e.f.hellos)
	e.f.mu.Unlock()
	if n != 1 {
		t.Errorf("%d hellos within 0.7s of a refusal, want 1 (long backoff)", n)
	}
	_ = e.n.DB.View(func(tx *store.Tx) error {
		if st := tx.SyncState(); st != before || store.Count[store.Image](tx) != 0 {
			t.Errorf("sync state %+v -> %+v, %d images: a refused site changed", before, st, store.Count[store.Image](tx))
		}
		return nil
	})
	logs := e.logs.String()
	if !strings.Contains(logs, "unauthorized") {
		t.Errorf("logs do not say unauthorized:\n%s", logs)
	}
	if strings.Contains(logs, wrong) || strings.Contains(e.n.Logs.String(), wrong) {
		t.Errorf("the credential appears in the logs")
	}
}

// TestSyncSilentCentral: a central that stops answering is dropped after
// HeartbeatMisses intervals, and the client reconnects.
func TestSyncSilentCentral(t *testing.T) {
	e := newEnv(t, testCredential)
	e.f.update(func() { e.f.silent, e.f.heartbeat = 1, 100*time.Millisecond })
	start := time.Now()
	e.run(nil)
	e.f.waitFor("a second hello", func() bool { return len(e.f.hellos) >= 2 })
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("reconnected after %v", d)
	}
	if !strings.Contains(e.logs.String(), "silent") {
		t.Errorf("logs do not say central was silent")
	}
}

func TestSyncURL(t *testing.T) {
	tests := map[string]string{
		"ws://central:8443/v1/sync":  "ws://central:8443/v1/sync",
		"wss://central/custom":       "wss://central/custom",
		"http://central:8080":        "ws://central:8080/v1/sync",
		"https://central.example/":   "wss://central.example/v1/sync",
		"https://central.example/op": "wss://central.example/op/v1/sync",
		"ftp://central":              "",
		"central:8080":               "",
		"wss://user:pw@central":      "",
	}
	for in, want := range tests {
		got, err := SyncURL(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("SyncURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestSyncCentralLostEvents: central restored from an old backup has
// stored less than it once acknowledged; the site sends again from what
// central has, since it never forgets its events.
func TestSyncCentralLostEvents(t *testing.T) {
	e := newEnv(t, testCredential)
	e.appendEvents(50, "early")
	e.run(nil)
	e.waitStoredAll()
	e.waitSite("acked seq 50", func(s store.SyncState) bool { return s.AckedSeq == 50 })
	e.f.update(func() { e.f.down = true })
	e.f.cut()
	e.f.update(func() { e.f.stored = e.f.stored[:20] })
	e.appendEvents(10, "later")
	e.f.update(func() { e.f.down = false })
	e.waitStoredAll()
	e.checkStored()
	e.f.mu.Lock()
	h := e.f.hellos[len(e.f.hellos)-1]
	e.f.mu.Unlock()
	// The hello says what the site had when it was made: the ten later
	// events, or not yet, if the client made it before they were
	// committed and dialled once central was back.
	if h.AckedSeq != 50 || (h.LastSeq != 50 && h.LastSeq != 60) {
		t.Errorf("hello after the restore = %+v, want acked 50, last 50 or 60", h.LogValue())
	}
	e.waitSite("acked seq 60", func(s store.SyncState) bool { return s.AckedSeq == 60 })
}

// TestSyncStopsWithLeadership: a node that stops leading closes its
// session and does not reconnect.
func TestSyncStopsWithLeadership(t *testing.T) {
	e := newEnv(t, testCredential)
	c, _ := e.run(nil)
	e.f.waitFor("a session", func() bool { return len(e.f.conns) == 1 && len(e.f.hellos) == 1 })
	e.f.waitFor("the welcome", c.Connected)
	if err := e.n.Node.Close(); err != nil {
		t.Fatal(err)
	}
	e.f.waitFor("the session to end", func() bool { return len(e.f.conns) == 0 })
	time.Sleep(300 * time.Millisecond)
	e.f.mu.Lock()
	n := len(e.f.hellos)
	e.f.mu.Unlock()
	if n != 1 || c.Connected() {
		t.Errorf("%d hellos, connected %t after the node stopped leading; want 1, false", n, c.Connected())
	}
}

// TestSyncBadWelcome: a central that claims events the site never
// recorded is told so, and the client waits long before trying again.
func TestSyncBadWelcome(t *testing.T) {
	e := newEnv(t, testCredential)
	e.f.update(func() {
		for i := range 5 {
			e.f.stored = append(e.f.stored, syncproto.Event{Seq: uint64(i + 1), Data: json.RawMessage(`{}`)})
		}
	})
	e.run(func(c *Config) { c.LongBackoff = 4 * time.Second })
	e.f.waitFor("the site's error", func() bool { return len(e.f.siteErrors) == 1 })
	time.Sleep(500 * time.Millisecond)
	e.f.mu.Lock()
	n, code := len(e.f.hellos), e.f.siteErrors[0]
	e.f.mu.Unlock()
	if n != 1 || code != syncproto.CodeBadMessage {
		t.Errorf("%d hellos, site error %q; want 1 hello (long backoff) and bad_message", n, code)
	}
	if !strings.Contains(e.logs.String(), "an operator must act") {
		t.Errorf("logs do not ask for an operator")
	}
}

// cutProxy forwards TCP connections to target; the site-to-central
// stream of the i'th connection is cut after limits[i] bytes (the last
// limit holds for every later connection; 0: never cut).
type cutProxy struct {
	ln     net.Listener
	target string
	limits []int
}

func newCutProxy(t *testing.T, target string, limits ...int) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, limits: limits}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *cutProxy) serve() {
	for i := 0; ; i++ {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		limit := p.limits[min(i, len(p.limits)-1)]
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer up.Close()
			go func() { io.Copy(c, up); c.Close() }()
			var src io.Reader = c
			if limit > 0 {
				src = io.LimitReader(c, int64(limit))
			}
			io.Copy(up, src) // returns at the cut: both ends close
		}()
	}
}

// TestSyncCutMidMessage: connections cut in the middle of event batches
// lose nothing and duplicate nothing.
func TestSyncCutMidMessage(t *testing.T) {
	e := newEnv(t, testCredential)
	e.appendEvents(5000, "boot.storm")
	p := newCutProxy(t, strings.TrimPrefix(e.f.srv.URL, "https://"), 20000, 150000, 90000, 0)
	e.run(func(c *Config) { c.URL = "wss://" + p.ln.Addr().String() + syncproto.Path })
	e.waitStoredAll()
	e.checkStored()
	e.waitSite("acked seq 5000", func(s store.SyncState) bool { return s.AckedSeq == 5000 })
	e.f.mu.Lock()
	n := len(e.f.hellos)
	e.f.mu.Unlock()
	if n < 4 {
		t.Errorf("%d hellos, want at least 4 (three cut connections)", n)
	}
}

// TestSyncLinkCutsEveryConnection: a link that cuts every connection
// after 32 KiB, less than one full events message, still carries every
// event, once: the batch shrinks until one fits (batch.go).
func TestSyncLinkCutsEveryConnection(t *testing.T) {
	e := newEnv(t, testCredential)
	e.appendEvents(3000, "boot.storm")
	p := newCutProxy(t, strings.TrimPrefix(e.f.srv.URL, "https://"), 32<<10)
	e.run(func(c *Config) { c.URL = "wss://" + p.ln.Addr().String() + syncproto.Path })
	e.waitStoredAll()
	e.checkStored()
	e.waitSite("acked seq 3000", func(s store.SyncState) bool { return s.AckedSeq == 3000 })
}

// TestBatchSize: cut halves down to minBatch, an acknowledgement
// doubles up to the protocol's limit.
func TestBatchSize(t *testing.T) {
	var b batchSize
	if got := b.get(); got != syncproto.MaxEventsPerBatch {
		t.Fatalf("a new batch holds %d events, want %d", got, syncproto.MaxEventsPerBatch)
	}
	var cuts []int
	for range 9 {
		cuts = append(cuts, b.cut())
	}
	if want := []int{500, 250, 125, 62, 31, 15, minBatch, minBatch, minBatch}; !slices.Equal(cuts, want) {
		t.Errorf("cuts %v, want %v", cuts, want)
	}
	for range 8 {
		b.acked()
	}
	if got := b.get(); got != syncproto.MaxEventsPerBatch {
		t.Errorf("after acknowledgements the batch holds %d events, want %d", got, syncproto.MaxEventsPerBatch)
	}
}

// TestSyncOrderGetsBootURL: the workflow of central's deprovision order
// gets this appliance's boot URL, as the API's orders do.
func TestSyncOrderGetsBootURL(t *testing.T) {
	e := newEnv(t, testCredential)
	m := apptest.Machine("m1", 1)
	m.BMC = &store.BMC{Address: "10.0.0.5"}
	e.f.addRevision(
		change(t, "template", "wipe", &store.Template{Name: "wipe", Actions: []store.Action{
			{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}}}}),
		change(t, "machine", "m1", m),
		change(t, "order", "o1", &store.Order{ID: "o1", Action: store.OrderDeprovision, MachineID: "m1"}))
	e.run(func(c *Config) {
		c.Node = cluster.NewSite(e.n.Node, site.ProposerConfig{Key: e.n.Key, BootURL: "http://10.9.0.1:8080"})
	})
	e.f.waitFor("desired_ack 1", func() bool { return len(e.f.acked) == 1 })
	_ = e.n.DB.View(func(tx *store.Tx) error {
		w, err := store.Get[store.Workflow](tx, "o1")
		if err != nil {
			t.Fatalf("workflow of order o1: %v", err)
		}
		if w.Values["boot_url"] != "http://10.9.0.1:8080" || w.Values["metadata_url"] != "http://10.9.0.1:8080" {
			t.Errorf("workflow values = %v, want this appliance's boot URL", w.Values)
		}
		return nil
	})
}

// TestSyncRefusesPlainURL: a ws:// or http:// central is refused unless
// Insecure is set, which the client then warns about.
func TestSyncRefusesPlainURL(t *testing.T) {
	e := newEnv(t, testCredential)
	for _, u := range []string{"ws://127.0.0.1:7443", "http://127.0.0.1:7443", "https://c1:7443,http://c2:7443"} {
		_, err := New(Config{Node: e.n.Site, Store: e.n.DB, URL: u, Site: "ams2", CredentialFile: e.cred})
		if err == nil || !strings.Contains(err.Error(), "not encrypted") || !strings.Contains(err.Error(), "insecure_central") {
			t.Errorf("URL %s: %v, want a refusal saying it is not encrypted and naming insecure_central", u, err)
		}
		var logs apptest.SyncBuffer
		_, err = New(Config{Node: e.n.Site, Store: e.n.DB, URL: u, Site: "ams2", CredentialFile: e.cred, Insecure: true,
			Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil || !strings.Contains(logs.String(), "in the clear") {
			t.Errorf("URL %s, Insecure: %v; logs %q, want a warning", u, err, logs.String())
		}
	}
}

// TestSyncVerifiesCentral: a central whose certificate the client's roots
// do not vouch for (the system's, or another CA) gets TLS handshakes and
// nothing else: no hello, no credential.
func TestSyncVerifiesCentral(t *testing.T) {
	for name, roots := range map[string]*x509.CertPool{"system roots": nil, "another CA": lab.NewCA(t, "another CA").Pool()} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, testCredential)
			e.appendEvents(3, "note")
			e.run(func(c *Config) { c.RootCAs = roots })
			e.f.waitFor("three connection attempts", func() bool { return e.f.accepted >= 3 })
			e.f.mu.Lock()
			hellos := len(e.f.hellos)
			e.f.mu.Unlock()
			if hellos != 0 {
				t.Errorf("%d hellos reached a central whose certificate does not verify", hellos)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "certificate") || strings.Contains(logs, testCredential) {
				t.Errorf("logs should say the certificate was refused, without the credential:\n%s", logs)
			}
		})
	}
}
