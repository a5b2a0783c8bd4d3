// Package hub is central's end of the sync protocol (package syncproto):
// the websocket every site connects out to, one session per site.
//
// A session authenticates the site's hello against the store, negotiates
// the version, checks the site's event history, answers welcome, then
// runs two goroutines until the connection ends: a reader that stores
// event batches (then acknowledges them) and records desired_acks, and a
// writer that sends the site's desired revisions as the store commits
// them (it waits on store.WatchDesired, never polls) and heartbeats.
//
// Before its hello is verified a connection is a stranger's: it may send
// frames of at most HelloLimit bytes (a larger one closes it with status
// 1009 before its payload is read), and at most Config.MaxPending
// connections are in their handshake at once (one more is answered 503
// with Retry-After before the websocket opens). A flood of
// unauthenticated connections therefore costs central a few KiB each, not
// a frame buffer of syncproto.MaxFrameSize.
//
// A session records its start and end as the site's link (naming this
// node) and what the site reports of itself in its hello and heartbeats
// (syncproto.Report): a report at most every ReportEvery unless it
// changed, so that heartbeats are not Raft writes.
//
// Central never blocks on a site: every write has a deadline
// (Config.WriteTimeout) after which the connection is dropped, a site
// silent for syncproto.HeartbeatMisses heartbeat intervals is dropped,
// and no lock is held across network I/O. A site that is offline simply
// has revisions waiting in the store. A new connection of a site
// replaces the old one, which is ended with error "replaced".
package hub

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/ratelog"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// Defaults.
const (
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxPending is the default bound of connections in their
	// handshake: every site of a large fleet reconnecting at once after
	// central restarts gets through in a few rounds of Retry-After.
	DefaultMaxPending = 128
	// HelloLimit is the largest frame read before the hello is verified:
	// a hello is a site's id, a credential of at most
	// syncproto.MaxCredentialSize and a few numbers. A stranger cannot
	// make central buffer a full syncproto.MaxFrameSize frame.
	HelloLimit = 8 << 10
	// revisionBatch is how many revisions the writer reads at once.
	revisionBatch = 64
)

// Config configures the hub.
type Config struct {
	Store *store.DB
	Log   *slog.Logger
	// Heartbeat is the heartbeat interval of every connection;
	// syncproto.DefaultHeartbeat if zero.
	Heartbeat time.Duration
	// WriteTimeout bounds every write to a site; DefaultWriteTimeout if
	// zero. A site that does not take a message in time is dropped.
	WriteTimeout time.Duration
	// MaxPending bounds the connections in their handshake (not yet
	// authenticated); one more is answered 503 with Retry-After before
	// the websocket opens. DefaultMaxPending if zero.
	MaxPending int
	// Node names this central node in the link records of the sessions
	// it holds (store.SetLink); "" for a single central.
	Node string
	// ReportEvery is the most often a site's report is recorded while it
	// does not change but for its newest event's sequence;
	// DefaultReportEvery if zero. A report that changed otherwise is
	// recorded at once.
	ReportEvery time.Duration
	// Spans keeps the spans sites send (on a connection of version 2 or
	// later): central's traces.Keeper; nil keeps them in Store.
	Spans SpanKeeper
}

// SpanKeeper keeps spans (traces.Keeper), all of them or, refusing one,
// none.
type SpanKeeper interface {
	Add(spans []tracing.Span) error
}

// storeSpans keeps spans in the store alone.
type storeSpans struct{ db *store.DB }

func (s storeSpans) Add(spans []tracing.Span) error {
	_, err := s.db.AddSpans(spans)
	return err
}

// DefaultReportEvery is how often at most a site's unchanged report (its
// newest event's sequence aside) is recorded: a Raft write per site per
// interval at most, not per heartbeat.
const DefaultReportEvery = 30 * time.Second

// Hub serves the sync websocket at syncproto.Path.
type Hub struct {
	db           *store.DB
	log          *slog.Logger
	heartbeat    time.Duration
	writeTimeout time.Duration
	node         string
	reportEvery  time.Duration
	spans        SpanKeeper

	// handshakes holds a token per connection in its handshake, up to
	// MaxPending.
	handshakes chan struct{}
	busy       *ratelog.Log

	mu       sync.Mutex
	sessions map[string]*session
	pending  map[*websocket.Conn]bool // connections still in their handshake
	closed   bool
	wg       sync.WaitGroup
}

// New returns a hub.
func New(cfg Config) *Hub {
	h := &Hub{db: cfg.Store, log: cfg.Log, heartbeat: cfg.Heartbeat, writeTimeout: cfg.WriteTimeout,
		node: cfg.Node, reportEvery: cfg.ReportEvery, spans: cfg.Spans,
		sessions: map[string]*session{}, pending: map[*websocket.Conn]bool{}}
	if h.spans == nil {
		h.spans = storeSpans{cfg.Store}
	}
	if h.reportEvery == 0 {
		h.reportEvery = DefaultReportEvery
	}
	if h.heartbeat == 0 {
		h.heartbeat = syncproto.DefaultHeartbeat
	}
	if h.writeTimeout == 0 {
		h.writeTimeout = DefaultWriteTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	h.handshakes = make(chan struct{}, cfg.MaxPending)
	h.busy = ratelog.New(ratelog.Config{Log: h.log, Level: slog.LevelWarn,
		Message: "sync: too many connections in their handshake; refused with 503"})
	return h
}

// Status is a site's connection as the hub sees it.
type Status struct {
	Connected bool      `json:"connected"`
	Since     time.Time `json:"connected_since,omitzero"`
	Remote    string    `json:"remote,omitempty"`
	// LastHeard is when the site's connection last delivered a message.
	LastHeard time.Time `json:"last_heard,omitzero"`
}

// Live says whether this node holds site's session, and when it last
// heard from it (store.LiveFunc).
func (h *Hub) Live(site string) (connected bool, heard time.Time) {
	st := h.Status(site)
	return st.Connected, st.LastHeard
}

// Status returns site's connection status.
func (h *Hub) Status(site string) Status {
	h.mu.Lock()
	s := h.sessions[site]
	h.mu.Unlock()
	if s == nil {
		return Status{}
	}
	return Status{Connected: true, Since: s.since, Remote: s.remote, LastHeard: time.Unix(0, s.heard.Load())}
}

// ServeHTTP accepts a site's websocket and runs its session until it
// ends.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.wg.Add(1)
	}
	h.mu.Unlock()
	if closed {
		http.Error(w, "central is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.wg.Done()
	select {
	case h.handshakes <- struct{}{}:
	default:
		h.busy.Record(r.Context(), httpserve.Source(r.RemoteAddr), slog.Int("max_pending", cap(h.handshakes)))
		w.Header().Set("Retry-After", "5")
		http.Error(w, "central is busy with other connections; retry", http.StatusServiceUnavailable)
		return
	}
	handshaking := true
	defer func() {
		if handshaking {
			<-h.handshakes
		}
	}()
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.log.Debug("sync: websocket accept", "remote", r.RemoteAddr, "err", err)
		return
	}
	// Small frames until the hello is verified (see serve).
	conn.SetReadLimit(HelloLimit)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		conn.CloseNow()
		return
	}
	h.pending[conn] = true
	h.mu.Unlock()
	handshaking = false
	h.serve(conn, r.RemoteAddr)
}

// Close ends every session (error "unavailable") and waits for them. New
// connections are refused from then on. It is safe to call more than
// once.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	var all []*session
	for _, s := range h.sessions {
		all = append(all, s)
	}
	var pending []*websocket.Conn
	for conn := range h.pending {
		pending = append(pending, conn)
	}
	h.mu.Unlock()
	for _, conn := range pending {
		conn.CloseNow() // its handshake read fails, and it ends
	}
	for _, s := range all {
		go s.end(syncproto.Errorf(syncproto.CodeUnavailable, "central is shutting down"))
	}
	h.wg.Wait()
}

// EndSessions ends every session (error "unavailable", saying why) but
// keeps taking connections: a central node that stops leading sends its
// sites away, to come back through the new leader.
func (h *Hub) EndSessions(why string) {
	h.mu.Lock()
	var all []*session
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		go s.end(syncproto.Errorf(syncproto.CodeUnavailable, "%s", why))
	}
}

// register makes s its site's session, replacing (and ending) the one
// before it. It reports false if the hub is closed.
func (h *Hub) register(s *session) bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	old := h.sessions[s.site]
	h.sessions[s.site] = s
	h.mu.Unlock()
	if old != nil {
		old.log.Info("sync: session replaced by a newer connection", "new_remote", s.remote)
		go old.end(syncproto.Errorf(syncproto.CodeReplaced, "a newer connection of site %s replaced this one", s.site))
	}
	return true
}

func (h *Hub) unregister(s *session) {
	h.mu.Lock()
	if h.sessions[s.site] == s {
		delete(h.sessions, s.site)
	}
	h.mu.Unlock()
}

// serve runs one connection: handshake, then the session.
func (h *Hub) serve(conn *websocket.Conn, remote string) {
	log := h.log.With("remote", remote)
	hello, welcome, err := h.handshake(conn)
	h.mu.Lock()
	delete(h.pending, conn)
	h.mu.Unlock()
	<-h.handshakes
	if err != nil {
		var ce connError
		if errors.As(err, &ce) {
			log.Info("sync: handshake", "err", err)
			conn.CloseNow()
			return
		}
		e := syncproto.ErrorFor(err)
		log.Warn("sync: refused", "site", siteOf(hello), "code", e.Code, "message", e.Message)
		if e.Code == syncproto.CodeInternal {
			log.Error("sync: handshake", "site", siteOf(hello), "err", err)
		}
		h.reject(conn, e)
		return
	}
	// The site is who it says: it may send frames of any size the
	// protocol allows.
	conn.SetReadLimit(syncproto.MaxFrameSize)
	s := newSession(h, conn, hello, welcome.Version, remote)
	if !h.register(s) {
		h.reject(conn, syncproto.Errorf(syncproto.CodeUnavailable, "central is shutting down"))
		return
	}
	// The link's record: this node holds the session, until it ends
	// (recorded once the hub no longer holds it).
	defer func() {
		h.unregister(s)
		_ = h.db.SetLink(s.site, h.node, s.since, false, time.Now())
	}()
	if err := h.db.SetLink(s.site, h.node, s.since, true, time.Now()); err != nil {
		s.log.Warn("sync: record the link", "err", err)
	}
	s.report(hello.Report)
	s.log.Info("sync: site connected", "version", welcome.Version, "hello", hello,
		"stored_seq", welcome.StoredSeq, "next_revision", welcome.NextRevision)
	if err := s.write(welcome); err != nil {
		s.log.Info("sync: send welcome", "err", err)
		conn.CloseNow()
		return
	}
	s.run()
}

func siteOf(h *syncproto.Hello) string {
	if h == nil {
		return ""
	}
	return h.Site
}

// handshake reads the hello and decides: a welcome, or the error to
// answer. A connError means there is nobody to answer.
func (h *Hub) handshake(conn *websocket.Conn) (*syncproto.Hello, *syncproto.Welcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), syncproto.HandshakeTimeout)
	defer cancel()
	typ, frame, err := conn.Read(ctx)
	if err != nil {
		return nil, nil, connError{err}
	}
	if typ != websocket.MessageText {
		return nil, nil, syncproto.Errorf(syncproto.CodeBadMessage, "frames are text")
	}
	m, err := syncproto.Decode(frame)
	if err != nil {
		return nil, nil, err
	}
	hello, ok := m.(*syncproto.Hello)
	if !ok {
		return nil, nil, syncproto.Errorf(syncproto.CodeBadMessage, "the first message must be hello, not %s", m.Type())
	}
	site := h.db.Authenticate(hello.Site, string(hello.Credential))
	if site == nil {
		return hello, nil, syncproto.Errorf(syncproto.CodeUnauthorized, "unknown site or wrong credential")
	}
	version, err := syncproto.Negotiate(syncproto.Supported, hello.Versions)
	if err != nil {
		return hello, nil, err
	}
	if err := hello.CheckHistory(site.StoredSeq); err != nil {
		return hello, nil, err
	}
	if _, err := h.db.AdvancePast(site.ID, hello.AppliedRevision); err != nil {
		return hello, nil, err
	}
	next, err := h.db.NextRevision(site.ID, hello.AppliedRevision)
	if err != nil {
		return hello, nil, err
	}
	return hello, &syncproto.Welcome{Version: version, StoredSeq: site.StoredSeq, NextRevision: next,
		HeartbeatMillis: h.heartbeat.Milliseconds()}, nil
}

// reject answers e and closes the connection.
func (h *Hub) reject(conn *websocket.Conn, e *syncproto.Error) {
	if frame, err := syncproto.Encode(e); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.writeTimeout)
		err = conn.Write(ctx, websocket.MessageText, frame)
		cancel()
		if err != nil {
			conn.CloseNow()
			return
		}
	}
	conn.Close(closeStatus(e.Code), e.Code)
}

// closeStatus is the websocket close status that follows an error code.
func closeStatus(code string) websocket.StatusCode {
	switch code {
	case syncproto.CodeBadMessage, syncproto.CodeUnauthorized, syncproto.CodeIncompatibleVersion, syncproto.CodeConflict:
		return websocket.StatusPolicyViolation
	case syncproto.CodeReplaced, syncproto.CodeUnavailable:
		return websocket.StatusGoingAway
	}
	return websocket.StatusInternalError
}

// connError is a failure of the connection itself (read, write, the
// peer gone or silent): there is nobody left to send an error to.
type connError struct{ err error }

func (e connError) Error() string { return "connection: " + e.err.Error() }
func (e connError) Unwrap() error { return e.err }
