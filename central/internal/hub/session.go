package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// session is one site's connection after the welcome.
type session struct {
	h     *Hub
	conn  *websocket.Conn
	site  string
	hello *syncproto.Hello
	// version is the connection's protocol version.
	version int
	remote  string
	since   time.Time
	log     *slog.Logger

	// sent is the last revision sent whole (or being sent its last
	// part); lastSent the highest event
	// sequence the site sent on this connection.
	sent     atomic.Uint64
	lastSent atomic.Uint64
	heard    atomic.Int64 // unix nanoseconds of the last message read

	// ctx is the session's goroutines', cancelled by end (after its
	// error is sent) or when one of them returns; endOnce guards end.
	ctx     context.Context
	cancel  context.CancelFunc
	endOnce sync.Once

	// recorded is the site's last report recorded, and when (the reader
	// goroutine's alone).
	recorded     *syncproto.Report
	recordedTime time.Time
}

func newSession(h *Hub, conn *websocket.Conn, hello *syncproto.Hello, version int, remote string) *session {
	s := &session{h: h, conn: conn, site: hello.Site, hello: hello, version: version, remote: remote, since: time.Now(),
		log: h.log.With("site", hello.Site, "remote", remote)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sent.Store(hello.AppliedRevision)
	s.heard.Store(time.Now().UnixNano())
	return s
}

// run reads and writes until the connection ends, then closes it: with
// the error that ended it, if it was the site's fault or central's. It
// reads in its caller's goroutine and writes in one more: two goroutines
// a site, whatever the fleet's size.
func (s *session) run() {
	var first error
	var once sync.Once
	fail := func(err error) {
		if err != nil {
			once.Do(func() { first = err })
		}
		s.cancel()
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		fail(s.writeDesired(s.ctx))
	}()
	fail(s.read(s.ctx))
	<-wrote
	err := first
	var ce connError
	switch {
	case err == nil || errors.As(err, &ce):
		s.log.Info("sync: site disconnected", "err", err)
		s.end(nil)
	default:
		e := syncproto.ErrorFor(err)
		if e.Code == syncproto.CodeInternal {
			s.log.Error("sync: session failed", "err", err)
		} else {
			s.log.Warn("sync: ending session", "code", e.Code, "message", e.Message)
		}
		s.end(e)
	}
}

// end closes the connection, first sending e if it is not nil. Only the
// first call does anything; it ends the session's goroutines.
func (s *session) end(e *syncproto.Error) {
	s.endOnce.Do(func() {
		defer s.cancel()
		if e == nil {
			s.conn.CloseNow()
			return
		}
		s.h.reject(s.conn, e)
	})
}

// write sends m, within the write timeout: a site that does not take it
// in time loses its connection.
func (s *session) write(m syncproto.Message) error {
	frame, err := syncproto.Encode(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.h.writeTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return connError{err}
	}
	return nil
}

// read handles the site's messages until the connection ends. One
// timer per session, reset by each message, ends a site silent for
// syncproto.HeartbeatMisses heartbeats: not a context and timer per read.
func (s *session) read(ctx context.Context) error {
	silence := syncproto.HeartbeatMisses * s.h.heartbeat
	var silent atomic.Bool
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(silence, func() { silent.Store(true); cancel() })
	defer timer.Stop()
	for {
		typ, frame, err := s.conn.Read(rctx)
		switch {
		case err != nil && silent.Load() && ctx.Err() == nil:
			return connError{errors.New("the site was silent for " + silence.String())}
		case err != nil:
			return connError{err}
		case typ != websocket.MessageText:
			return syncproto.Errorf(syncproto.CodeBadMessage, "frames are text")
		}
		timer.Reset(silence)
		s.heard.Store(time.Now().UnixNano())
		m, err := syncproto.Decode(frame)
		if err != nil {
			return err
		}
		if err := syncproto.CheckSender(m, syncproto.Site); err != nil {
			return err
		}
		if err := s.handle(m); err != nil {
			return err
		}
	}
}

func (s *session) handle(m syncproto.Message) error {
	switch m := m.(type) {
	case *syncproto.Hello:
		return syncproto.Errorf(syncproto.CodeBadMessage, "a second hello")
	case *syncproto.DesiredAck:
		if sent := s.sent.Load(); m.Revision > sent {
			return syncproto.Errorf(syncproto.CodeBadMessage, "desired_ack.revision: is %d, but central has sent up to %d", m.Revision, sent)
		}
		return s.h.db.RecordAck(s.site, m.Revision)
	case *syncproto.Events:
		stored, err := s.h.db.StoreEvents(s.site, m, s.hello.AckedSeq)
		if err != nil {
			return err
		}
		last := max(s.lastSent.Load(), m.Last)
		s.lastSent.Store(last)
		return s.write(&syncproto.EventsAck{Seq: min(stored, last)})
	case *syncproto.Spans:
		if err := s.keepSpans(m); err != nil {
			return err
		}
		return s.write(&syncproto.SpansAck{Batch: m.Batch})
	case *syncproto.Error:
		return connError{errors.New("the site sent error " + m.Code + ": " + m.Message)}
	case *syncproto.Heartbeat:
		s.report(m.Report)
	}
	return nil // a heartbeat: being heard is most of what it says
}

// report records the site's report if it changed, or if only its newest
// event's sequence did and the last was recorded ReportEvery ago: not a
// Raft write per heartbeat. A report that cannot be recorded (central
// lost its leader) is tried again with the next.
func (s *session) report(r *syncproto.Report) {
	if r == nil {
		return
	}
	r = r.Clip()
	now := time.Now()
	if old := s.recorded; old != nil {
		same := *old
		same.LastSeq = r.LastSeq
		if reflect.DeepEqual(&same, r) && (old.LastSeq == r.LastSeq || now.Sub(s.recordedTime) < s.h.reportEvery) {
			return
		}
	}
	if err := s.h.db.ReportSite(s.site, r, now); err != nil {
		s.log.Warn("sync: record the site's report", "err", err)
		return
	}
	s.log.Debug("sync: site's report recorded", "appliance", r.Appliance, "healthy", r.Healthy, "last_seq", r.LastSeq)
	s.recorded, s.recordedTime = r, now
}

// writeDesired sends the site's revisions after the one it has applied,
// each as it is committed, and heartbeats while there is nothing to send.
// It reads the store when a commit for its site wakes it (the store wakes
// each site's watchers alone), never on a heartbeat.
func (s *session) writeDesired(ctx context.Context) error {
	cursor := s.hello.AppliedRevision
	tick := time.NewTicker(s.h.heartbeat)
	defer tick.Stop()
	for ctx.Err() == nil {
		changed := s.h.db.WatchDesired(s.site)
		revs, err := s.h.db.NextRevisions(s.site, cursor, revisionBatch)
		if err != nil {
			return err
		}
		for _, r := range revs {
			if err := s.send(r); err != nil {
				return err
			}
			cursor = r.Revision
		}
		if len(revs) > 0 {
			continue
		}
		if err := s.idle(ctx, changed, tick.C); err != nil {
			return err
		}
	}
	return nil
}

// send sends revision r, in as many parts as it takes.
func (s *session) send(r *store.Revision) error {
	parts, err := syncproto.SplitDesired(r.Revision, r.Full, r.Changes)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if !p.More {
			// Before the write: the site may ack it before this
			// goroutine runs again.
			s.sent.Store(r.Revision)
		}
		if err := s.write(p); err != nil {
			return err
		}
	}
	return nil
}

// idle heartbeats at every tick until changed is closed or ctx ends.
func (s *session) idle(ctx context.Context, changed <-chan struct{}, tick <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			return nil
		case <-tick:
			if err := s.write(&syncproto.Heartbeat{Time: time.Now().UTC()}); err != nil {
				return err
			}
		}
	}
}

// keepSpans keeps a batch of the site's spans (version 2): each decoded
// and validated, a bad one refusing the message (bad_message, naming the
// span and what is wrong) with nothing of it kept; each span's site is
// the session's, whatever it said. A span sent before is kept once, so
// spans that arrive late (after a WAN outage) join their trace.
func (s *session) keepSpans(m *syncproto.Spans) error {
	if s.version < 2 {
		return syncproto.Errorf(syncproto.CodeBadMessage, "spans: the connection's version is %d; spans need version 2", s.version)
	}
	spans := make([]tracing.Span, len(m.Spans))
	for i, raw := range m.Spans {
		sp := &spans[i]
		if err := json.Unmarshal(raw, sp); err != nil {
			return syncproto.Errorf(syncproto.CodeBadMessage, "spans[%d]: not a span: %v", i, err)
		}
		if err := sp.Validate(); err != nil {
			return syncproto.Errorf(syncproto.CodeBadMessage, "spans[%d]: %v", i, err)
		}
		if sp.Attrs == nil {
			sp.Attrs = map[string]string{}
		}
		sp.Attrs[tracing.AttrSite] = s.site
	}
	if err := s.h.spans.Add(spans); err != nil {
		if _, ok := errs.AsError(err); ok {
			return syncproto.Errorf(syncproto.CodeBadMessage, "spans: %v", err)
		}
		return err
	}
	return nil
}
