package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/syncproto"
)

type fixture struct {
	t    *testing.T
	dir  string
	db   *store.DB
	hub  *Hub
	srv  *httptest.Server
	logs *centraltest.Buffer
	cfg  Config
}

// newFixture runs a hub over a fresh store on a loopback server.
func newFixture(t *testing.T, cfg Config) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), logs: &centraltest.Buffer{}, cfg: cfg}
	f.start()
	t.Cleanup(f.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("central's log:\n%s", f.logs)
		}
	})
	return f
}

func (f *fixture) start() {
	db, err := store.Open(filepath.Join(f.dir, "central.db"))
	if err != nil {
		f.t.Fatal(err)
	}
	cfg := f.cfg
	cfg.Store = db
	cfg.Log = f.logs.Logger()
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	f.db, f.hub = db, New(cfg)
	mux := http.NewServeMux()
	mux.Handle(syncproto.Path, f.hub)
	f.srv = httptest.NewServer(mux)
}

func (f *fixture) stop() {
	if f.srv == nil {
		return
	}
	f.hub.Close()
	f.srv.Close()
	f.db.Close()
	f.srv = nil
}

// site creates a site and returns its credential.
func (f *fixture) site(id string) string {
	cred, hash := store.NewSecret()
	if _, err := f.db.CreateSite(id, id, hash); err != nil {
		f.t.Fatal(err)
	}
	return cred
}

func (f *fixture) order(site, id string) uint64 {
	f.t.Helper()
	obj := fmt.Sprintf(`{"id":%q,"action":"power_cycle","machine_id":"m1"}`, id)
	rev, err := f.db.PutDesired(site, store.KindOrder, id, json.RawMessage(obj))
	if err != nil {
		f.t.Fatal(err)
	}
	return rev
}

// client is a test site speaking syncproto directly.
type client struct {
	t    *testing.T
	conn *websocket.Conn
}

// ioTimeout bounds a dial, a send and a receive of the test's client: a
// guard against a hang, not a measure (a full snapshot of several MB
// under the race detector on a loaded machine takes seconds).
const ioTimeout = 30 * time.Second

func (f *fixture) dial() *client {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+syncproto.Path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	conn.SetReadLimit(syncproto.MaxFrameSize)
	c := &client{t: f.t, conn: conn}
	f.t.Cleanup(func() { conn.CloseNow() })
	return c
}

func (c *client) send(m syncproto.Message) {
	c.t.Helper()
	frame, err := syncproto.Encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		c.t.Fatalf("send %s: %v", m.Type(), err)
	}
}

// recv returns the next message that is not a heartbeat.
func (c *client) recv() syncproto.Message {
	c.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		_, frame, err := c.conn.Read(ctx)
		cancel()
		if err != nil {
			c.t.Fatalf("recv: %v", err)
		}
		m, err := syncproto.Decode(frame)
		if err != nil {
			c.t.Fatalf("recv: %v", err)
		}
		if _, ok := m.(*syncproto.Heartbeat); !ok {
			return m
		}
	}
}

// closed reports whether the server closed the connection (within 5 s).
func (c *client) closed() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := c.conn.Read(ctx); err != nil {
			return ctx.Err() == nil
		}
	}
}

func hello(site, cred string, applied, acked, last uint64) *syncproto.Hello {
	return &syncproto.Hello{Site: site, Credential: syncproto.Credential(cred), Versions: syncproto.Supported,
		AppliedRevision: applied, AckedSeq: acked, LastSeq: last}
}

// connect opens a session and returns the client and its welcome.
func (f *fixture) connect(h *syncproto.Hello) (*client, *syncproto.Welcome) {
	f.t.Helper()
	c := f.dial()
	c.send(h)
	m := c.recv()
	w, ok := m.(*syncproto.Welcome)
	if !ok {
		f.t.Fatalf("answer to hello: %#v", m)
	}
	if err := w.Answers(h); err != nil {
		f.t.Fatal(err)
	}
	return c, w
}

func events(first, last uint64) *syncproto.Events {
	b := &syncproto.Events{First: first, Last: last}
	for s := first; s <= last; s++ {
		b.Events = append(b.Events, syncproto.Event{Seq: s, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, s))})
	}
	return b
}

func TestRefused(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("fra-1")
	f.order("fra-1", "o1")
	if _, err := f.db.StoreEvents("fra-1", events(1, 5), 0); err != nil {
		t.Fatal(err)
	}
	before, _ := f.db.Site("fra-1")
	tests := map[string]struct {
		first    syncproto.Message
		code     string
		contains string
	}{
		"wrong credential":                {hello("fra-1", cred+"x", 0, 0, 9), syncproto.CodeUnauthorized, "unknown site or wrong credential"},
		"unknown site":                    {hello("fra-2", cred, 0, 0, 9), syncproto.CodeUnauthorized, "unknown site or wrong credential"},
		"incompatible version":            {&syncproto.Hello{Site: "fra-1", Credential: syncproto.Credential(cred), Versions: syncproto.VersionRange{Min: 3, Max: 4}, LastSeq: 9}, syncproto.CodeIncompatibleVersion, "central speaks versions 1 to 2, the site speaks versions 3 to 4"},
		"history went back":               {hello("fra-1", cred, 0, 0, 3), syncproto.CodeConflict, "central has stored events up to 5"},
		"not a hello first":               {&syncproto.Heartbeat{Time: time.Now()}, syncproto.CodeBadMessage, "the first message must be hello"},
		"past revision, wrong credential": {hello("fra-1", "nope", 50, 0, 9), syncproto.CodeUnauthorized, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := f.dial()
			c.send(tt.first)
			e, ok := c.recv().(*syncproto.Error)
			if !ok || e.Code != tt.code || !strings.Contains(e.Message, tt.contains) {
				t.Fatalf("answer %#v, want error %s containing %q", e, tt.code, tt.contains)
			}
			if !c.closed() {
				t.Error("the connection stays open after the error")
			}
			if strings.Contains(e.Message, cred) {
				t.Error("the error quotes the credential")
			}
		})
	}
	after, _ := f.db.Site("fra-1")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("a refused hello changed the site:\n%+v\n%+v", before, after)
	}
	if st := f.hub.Status("fra-1"); st.Connected {
		t.Error("a refused site shows as connected")
	}
}

// An order placed while the site is offline is delivered when it
// connects, acknowledged once; later orders are pushed as they are
// placed; a site that reconnects is sent only what follows its applied
// revision.
func TestOrdersReachTheSite(t *testing.T) {
	f := newFixture(t, Config{Heartbeat: 700 * time.Millisecond})
	cred := f.site("s1")
	f.order("s1", "o1")
	c, w := f.connect(hello("s1", cred, 0, 0, 0))
	if w.NextRevision != 1 || w.StoredSeq != 0 || w.HeartbeatMillis != 700 {
		t.Errorf("welcome %+v", w)
	}
	d, ok := c.recv().(*syncproto.Desired)
	if !ok || d.Revision != 1 || d.Full || len(d.Changes) != 1 || d.Changes[0].Key != "o1" || d.Changes[0].Kind != "order" {
		t.Fatalf("first desired: %+v", d)
	}
	c.send(&syncproto.DesiredAck{Revision: 1})
	f.order("s1", "o2")
	if d, ok := c.recv().(*syncproto.Desired); !ok || d.Revision != 2 || d.Changes[0].Key != "o2" {
		t.Fatalf("pushed desired: %+v", d)
	}
	c.send(&syncproto.DesiredAck{Revision: 2})
	centraltest.WaitFor(t, "the acks recorded", func() bool { s, _ := f.db.Site("s1"); return s.AckedRevision == 2 })
	if st := f.hub.Status("s1"); !st.Connected {
		t.Error("status: not connected")
	}
	c.conn.CloseNow()
	centraltest.WaitFor(t, "the session to end", func() bool { return !f.hub.Status("s1").Connected })

	f.order("s1", "o3")
	c, w = f.connect(hello("s1", cred, 2, 0, 0))
	if w.NextRevision != 3 {
		t.Errorf("welcome after reconnect: %+v", w)
	}
	if d, ok := c.recv().(*syncproto.Desired); !ok || d.Revision != 3 || d.Changes[0].Key != "o3" {
		t.Fatalf("desired after reconnect: %+v", d)
	}
	// An ack of a revision never sent is refused.
	c.send(&syncproto.DesiredAck{Revision: 9})
	if e, ok := c.recv().(*syncproto.Error); !ok || e.Code != syncproto.CodeBadMessage {
		t.Fatalf("ack past what was sent: %+v", e)
	}
}

// Events sent twice (a resend after a reconnect) are stored once and in
// order, and the acks cover them.
func TestEventsStoredOnce(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("s1")
	c, _ := f.connect(hello("s1", cred, 0, 0, 12))
	c.send(events(1, 5))
	if a, ok := c.recv().(*syncproto.EventsAck); !ok || a.Seq != 5 {
		t.Fatalf("ack: %+v", a)
	}
	c.send(events(3, 8)) // overlaps
	if a, ok := c.recv().(*syncproto.EventsAck); !ok || a.Seq != 8 {
		t.Fatalf("ack: %+v", a)
	}
	c.send(events(9, 10))
	centraltest.WaitFor(t, "events to 10 stored", func() bool { s, _ := f.db.Site("s1"); return s.StoredSeq == 10 })
	c.conn.CloseNow() // the ack of 9-10 lost

	c, w := f.connect(hello("s1", cred, 0, 8, 12))
	if w.StoredSeq != 10 {
		t.Errorf("welcome stored_seq %d, want 10", w.StoredSeq)
	}
	c.send(events(6, 12)) // a site that resends more than it must
	if a, ok := c.recv().(*syncproto.EventsAck); !ok || a.Seq != 12 {
		t.Fatalf("ack: %+v", a)
	}
	c.send(events(15, 16)) // a gap
	if e, ok := c.recv().(*syncproto.Error); !ok || e.Code != syncproto.CodeBadMessage || e.Field != "first" {
		t.Fatalf("gap: %+v", e)
	}
	got, stored, err := f.db.Events("s1", 0, 100)
	if err != nil || stored != 12 || len(got) != 12 {
		t.Fatalf("events: %d, stored %d, %v", len(got), stored, err)
	}
	for i, e := range got {
		if want := fmt.Sprintf(`{"n":%d}`, i+1); e.Seq != uint64(i+1) || string(e.Data) != want {
			t.Errorf("event %d: %d %s", i, e.Seq, e.Data)
		}
	}
}

func TestSecondConnectionReplacesFirst(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("s1")
	a, _ := f.connect(hello("s1", cred, 0, 0, 0))
	b, _ := f.connect(hello("s1", cred, 0, 0, 0))
	if e, ok := a.recv().(*syncproto.Error); !ok || e.Code != syncproto.CodeReplaced {
		t.Fatalf("the first connection got %+v, want error replaced", e)
	}
	if !a.closed() {
		t.Error("the replaced connection stays open")
	}
	f.order("s1", "o1")
	if d, ok := b.recv().(*syncproto.Desired); !ok || d.Revision != 1 {
		t.Fatalf("the second connection: %+v", d)
	}
	if !f.hub.Status("s1").Connected {
		t.Error("status: the replaced session's end unregistered the new one")
	}
}

// EndSessions (a central node that stopped leading) ends every session
// with "unavailable", saying why, and the hub takes connections after.
func TestEndSessions(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("s1")
	a, _ := f.connect(hello("s1", cred, 0, 0, 0))
	f.hub.EndSessions("this central node stopped leading; reconnect")
	e, ok := a.recv().(*syncproto.Error)
	if !ok || e.Code != syncproto.CodeUnavailable || !strings.Contains(e.Message, "stopped leading") {
		t.Fatalf("the session got %+v, want error unavailable saying why", e)
	}
	if !a.closed() {
		t.Error("the ended connection stays open")
	}
	centraltest.WaitFor(t, "the session to unregister", func() bool { return !f.hub.Status("s1").Connected })
	b, _ := f.connect(hello("s1", cred, 0, 0, 0))
	f.order("s1", "o1")
	if d, ok := b.recv().(*syncproto.Desired); !ok || d.Revision != 1 {
		t.Fatalf("a connection after EndSessions: %+v", d)
	}
}

// A site that never reads does not hold up the API's writes, nor another
// site's session; it is dropped after the write timeout.
func TestDeadSiteBlocksNothing(t *testing.T) {
	// The write timeout is long against the live site's exchange, even on
	// a loaded machine: the dead site still being connected when the live
	// site's exchange is done is what shows the exchange did not wait.
	f := newFixture(t, Config{WriteTimeout: 10 * time.Second, Heartbeat: time.Minute})
	deadCred, liveCred := f.site("dead"), f.site("live")
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 900<<10) + `"}`)
	for i := range 12 { // ~11 MB for a site that takes nothing: more than the socket buffers
		if _, err := f.db.PutDesired("dead", store.KindImage, fmt.Sprintf("img%d", i), big); err != nil {
			t.Fatal(err)
		}
	}
	dead := f.dial()
	dead.send(hello("dead", deadCred, 0, 0, 0)) // and never reads again
	live, _ := f.connect(hello("live", liveCred, 0, 0, 0))
	centraltest.WaitFor(t, "the dead site's session", func() bool { return f.hub.Status("dead").Connected })
	time.Sleep(300 * time.Millisecond) // its writer is stuck in a write

	start := time.Now()
	f.order("dead", "o1")
	f.order("live", "o1")
	if d, ok := live.recv().(*syncproto.Desired); !ok || d.Changes[0].Key != "o1" {
		t.Fatalf("live site: %+v", d)
	}
	live.send(events(1, 1))
	if a, ok := live.recv().(*syncproto.EventsAck); !ok || a.Seq != 1 {
		t.Fatalf("live site's ack: %+v", a)
	}
	if !f.hub.Status("dead").Connected {
		t.Errorf("the live site's order and events took %v, until the stalled site's write timed out: they waited for it", time.Since(start))
	}
	centraltest.WaitFor(t, "the dead site to be dropped", func() bool { return !f.hub.Status("dead").Connected })
	if !f.hub.Status("live").Connected {
		t.Error("the live site lost its session")
	}
}

func TestSilentSiteDropped(t *testing.T) {
	f := newFixture(t, Config{Heartbeat: 100 * time.Millisecond})
	cred := f.site("s1")
	c, _ := f.connect(hello("s1", cred, 0, 0, 0))
	start := time.Now()
	if !c.closed() {
		t.Fatal("a silent site keeps its session")
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("dropped after %v, before %d heartbeats", took, syncproto.HeartbeatMisses)
	}
}

// Central restarted (the store closed and reopened on the same
// directory) keeps sites, revisions, cursors and events.
func TestRestart(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("s1")
	f.order("s1", "o1")
	f.order("s1", "o2")
	c, _ := f.connect(hello("s1", cred, 0, 0, 4))
	c.recv()
	c.recv()
	c.send(&syncproto.DesiredAck{Revision: 1})
	c.send(events(1, 4))
	if a, ok := c.recv().(*syncproto.EventsAck); !ok || a.Seq != 4 {
		t.Fatalf("ack: %+v", a)
	}
	f.stop()
	f.start()
	s, err := f.db.Site("s1")
	if err != nil || s.Revision != 2 || s.AckedRevision != 1 || s.StoredSeq != 4 {
		t.Fatalf("site after restart: %+v, %v", s, err)
	}
	c, w := f.connect(hello("s1", cred, 1, 4, 6))
	if w.StoredSeq != 4 || w.NextRevision != 2 {
		t.Errorf("welcome after restart: %+v", w)
	}
	if d, ok := c.recv().(*syncproto.Desired); !ok || d.Revision != 2 || d.Changes[0].Key != "o2" {
		t.Fatalf("desired after restart: %+v", d)
	}
	c.send(events(5, 6))
	if a, ok := c.recv().(*syncproto.EventsAck); !ok || a.Seq != 6 {
		t.Fatalf("ack after restart: %+v", a)
	}
}

// The credentials never reach the log, whatever happens to a session.
func TestLogsHoldNoCredential(t *testing.T) {
	f := newFixture(t, Config{Heartbeat: 100 * time.Millisecond})
	cred := f.site("s1")
	c := f.dial()
	c.send(hello("s1", cred+"wrong", 0, 0, 0))
	c.recv()
	c, _ = f.connect(hello("s1", cred, 0, 0, 1))
	c.send(events(1, 1))
	c.recv()
	f.connect(hello("s1", cred, 0, 0, 1))
	c.closed()
	f.stop()
	logs := f.logs.String()
	if !strings.Contains(logs, "site=s1") {
		t.Fatalf("the log does not show the sessions:\n%s", logs)
	}
	if strings.Contains(logs, cred) {
		t.Errorf("the log holds the site's credential:\n%s", logs)
	}
}

// A site whose history went back is refused until an operator resets its
// events at central; then it is welcome and sends them again.
func TestConflictUntilReset(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("s1")
	if _, err := f.db.StoreEvents("s1", events(1, 5), 0); err != nil {
		t.Fatal(err)
	}
	c := f.dial()
	c.send(hello("s1", cred, 0, 0, 2))
	if e, ok := c.recv().(*syncproto.Error); !ok || e.Code != syncproto.CodeConflict {
		t.Fatalf("answer: %+v", e)
	}
	if dropped, err := f.db.ResetEvents("s1"); err != nil || dropped != 5 {
		t.Fatalf("reset: %d, %v", dropped, err)
	}
	c, w := f.connect(hello("s1", cred, 0, 0, 2))
	if w.StoredSeq != 0 {
		t.Errorf("welcome after reset: %+v", w)
	}
	c.send(events(1, 2))
	if a, ok := c.recv().(*syncproto.EventsAck); !ok || a.Seq != 2 {
		t.Fatalf("ack: %+v", a)
	}
}

// Close does not wait for a connection that has not said hello.
func TestCloseEndsHandshakes(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.dial()
	centraltest.WaitFor(t, "the connection to be pending", func() bool {
		f.hub.mu.Lock()
		defer f.hub.mu.Unlock()
		return len(f.hub.pending) == 1
	})
	start := time.Now()
	f.hub.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
	if !c.closed() {
		t.Error("the connection stays open")
	}
}

// A site that has applied more revisions than central has (central
// restored from a backup) gets a full snapshot past its revision, in
// parts when it does not fit a frame, and revisions go on from there.
func TestSnapshotPastTheSite(t *testing.T) {
	f := newFixture(t, Config{Heartbeat: time.Minute}) // this site sends no heartbeats
	cred := f.site("s1")
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 900<<10) + `"}`)
	for i := range 6 {
		if _, err := f.db.PutDesired("s1", store.KindImage, fmt.Sprintf("img%d", i), big); err != nil {
			t.Fatal(err)
		}
	}
	f.order("s1", "o1")
	h := hello("s1", cred, 50, 0, 0)
	c, w := f.connect(h)
	if w.NextRevision != 51 {
		t.Errorf("welcome %+v, want next revision 51", w)
	}
	recv := syncproto.NewDesiredReceiver(h.AppliedRevision)
	var keys []string
	for complete := false; !complete; {
		d, ok := c.recv().(*syncproto.Desired)
		if !ok || !d.Full || d.Revision != 51 {
			t.Fatalf("desired: %+v", d)
		}
		var err error
		if complete, err = recv.Accept(d); err != nil {
			t.Fatal(err)
		}
		for _, ch := range d.Changes {
			keys = append(keys, ch.Kind+"/"+ch.Key)
		}
	}
	want := "[image/img0 image/img1 image/img2 image/img3 image/img4 image/img5 order/o1]"
	if fmt.Sprint(keys) != want {
		t.Errorf("snapshot %v, want %s", keys, want)
	}
	c.send(&syncproto.DesiredAck{Revision: 51})
	f.order("s1", "o2")
	if d, ok := c.recv().(*syncproto.Desired); !ok || d.Revision != 52 || d.Full {
		t.Fatalf("the next delta: %+v", d)
	}
}

// Many sites at once: each gets its own order, and only its own.
func TestManySites(t *testing.T) {
	f := newFixture(t, Config{Heartbeat: time.Minute})
	const n = 100
	clients := make([]*client, n)
	for i := range n {
		id := fmt.Sprintf("site-%03d", i)
		clients[i], _ = f.connect(hello(id, f.site(id), 0, 0, 0))
	}
	start := time.Now()
	for i := range n {
		f.order(fmt.Sprintf("site-%03d", i), fmt.Sprintf("o-%03d", i))
	}
	for i, c := range clients {
		d, ok := c.recv().(*syncproto.Desired)
		if want := fmt.Sprintf("o-%03d", i); !ok || d.Revision != 1 || d.Changes[0].Key != want {
			t.Fatalf("site %d got %+v, want order %s", i, d, want)
		}
	}
	t.Logf("%d orders placed and delivered to %d sites in %v", n, n, time.Since(start))
}
