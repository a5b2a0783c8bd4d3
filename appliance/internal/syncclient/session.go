package syncclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/syncproto"
)

// readBatch is how many events the sender reads from the store at once.
const readBatch = 4 * syncproto.MaxEventsPerBatch

// session is one connection to central.
type session struct {
	c       *Client
	conn    *websocket.Conn
	log     *slog.Logger
	hello   *syncproto.Hello
	welcome *syncproto.Welcome

	sent     atomic.Uint64 // the last event sequence sent
	acked    uint64        // the last acknowledgement recorded (reader only)
	lastRecv atomic.Int64  // unix nanoseconds of the last frame received
	// spansAcked passes central's spans_acks from the reader to the
	// spans sender (spans.go).
	spansAcked chan uint64
}

// session connects, says hello and syncs until the connection ends or
// ctx does. It reports whether central welcomed the site, and why the
// session ended.
func (c *Client) session(ctx context.Context, url string) (welcomed bool, err error) {
	cred, err := c.credential()
	if err != nil {
		return false, err
	}
	var st store.SyncState
	if err := c.cfg.Store.View(func(tx *store.Tx) error { st = tx.SyncState(); return nil }); err != nil {
		return false, err
	}
	hello := &syncproto.Hello{Site: c.cfg.Site, Credential: cred, Versions: syncproto.Supported,
		AppliedRevision: st.AppliedRevision, AckedSeq: min(st.AckedSeq, st.LastSeq), LastSeq: st.LastSeq,
		Report: c.selfReport(st.LastSeq)}

	dctx, cancel := context.WithTimeout(ctx, syncproto.HandshakeTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient})
	if err != nil {
		return false, fmt.Errorf("dial central %s: %w", url, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(syncproto.MaxFrameSize)
	s := &session{c: c, conn: conn, log: c.log.With("central", url), hello: hello, spansAcked: make(chan uint64, ackBuffer)}
	if err := s.handshake(dctx); err != nil {
		return false, s.end(ctx, err)
	}
	c.connected.Store(true)
	defer c.connected.Store(false)
	c.lastSync.Store(time.Now().UnixNano())
	c.link.set(link{known: true, connected: true, since: time.Now(), central: url})
	s.log.Info("connected to central", "hello", hello, "version", s.welcome.Version,
		"stored_seq", s.welcome.StoredSeq, "next_revision", s.welcome.NextRevision,
		"heartbeat", s.welcome.HeartbeatInterval())

	s.sent.Store(s.welcome.StoredSeq)
	s.acked = hello.AckedSeq
	s.lastRecv.Store(time.Now().UnixNano())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.readLoop(gctx) })
	g.Go(func() error { return s.sendEvents(gctx) })
	g.Go(func() error { return s.heartbeat(gctx) })
	if c.cfg.Spans != nil && s.welcome.Version >= 2 {
		g.Go(func() error { return s.sendSpans(gctx) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if sent := s.sent.Load(); sent > s.welcome.StoredSeq && sent > s.acked {
		n := c.batch.cut()
		s.log.Info("the session ended with events sent and not acknowledged: later messages hold fewer events",
			"sent", sent, "acked", s.acked, "batch", n)
	}
	return true, s.end(ctx, err)
}

// handshake sends the hello and reads central's answer.
func (s *session) handshake(ctx context.Context) error {
	if err := s.write(ctx, s.hello); err != nil {
		return err
	}
	msg, err := s.read(ctx)
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *syncproto.Error:
		return m
	case *syncproto.Welcome:
		if err := m.Answers(s.hello); err != nil {
			return &localError{fmt.Errorf("%w: %w", errBadWelcome, err)}
		}
		s.welcome = m
		return nil
	}
	return &localError{syncproto.Errorf(syncproto.CodeBadMessage, "%s before welcome: central answers a hello with welcome or error", msg.Type())}
}

// errBadWelcome marks a welcome that does not answer the hello: central
// has stored events the site never recorded, or speaks another version.
// Only an operator can resolve it.
var errBadWelcome = errors.New("central's welcome does not answer the hello")

// localError is a rule central broke, which the site tells it before
// closing.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// end closes the connection as err says and returns err.
func (s *session) end(ctx context.Context, err error) error {
	var le *localError
	switch {
	case errors.As(err, &le):
		// Tell central what it did wrong, briefly: it may be gone.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = s.write(wctx, syncproto.ErrorFor(le.err))
		cancel()
		s.conn.Close(websocket.StatusPolicyViolation, "bad message")
	default:
		// Central sent an error and closes, the connection failed, or
		// this node stopped leading: nothing more to say.
		s.conn.CloseNow()
	}
	return err
}

// write encodes and sends one message.
func (s *session) write(ctx context.Context, m syncproto.Message) error {
	frame, err := syncproto.Encode(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	if err := s.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return fmt.Errorf("send %s: %w", m.Type(), err)
	}
	return nil
}

// read receives one message from central, checked.
func (s *session) read(ctx context.Context) (syncproto.Message, error) {
	typ, frame, err := s.conn.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	s.lastRecv.Store(time.Now().UnixNano())
	if typ != websocket.MessageText {
		return nil, &localError{syncproto.Errorf(syncproto.CodeBadMessage, "a frame is a text message")}
	}
	msg, err := syncproto.Decode(frame)
	if err != nil {
		return nil, &localError{err}
	}
	if err := syncproto.CheckSender(msg, syncproto.Central); err != nil {
		return nil, &localError{err}
	}
	return msg, nil
}

// readLoop handles central's messages after the welcome.
func (s *session) readLoop(ctx context.Context) error {
	recv := syncproto.NewDesiredReceiver(s.hello.AppliedRevision)
	var parts []site.DesiredChange
	for {
		msg, err := s.read(ctx)
		if err != nil {
			return err
		}
		s.c.lastSync.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *syncproto.Desired:
			complete, err := recv.Accept(m)
			if err != nil {
				return &localError{err}
			}
			for _, ch := range m.Changes {
				parts = append(parts, site.DesiredChange{Kind: ch.Kind, Key: ch.Key, Object: ch.Object, Deleted: ch.Deleted})
			}
			if !complete {
				continue
			}
			d := &site.Desired{Revision: m.Revision, Full: m.Full, Changes: parts}
			parts = nil
			if err := s.applyDesired(ctx, d); err != nil {
				return err
			}
			if err := s.write(ctx, &syncproto.DesiredAck{Revision: d.Revision}); err != nil {
				return err
			}
		case *syncproto.EventsAck:
			if err := s.recordAck(ctx, m.Seq); err != nil {
				return err
			}
		case *syncproto.SpansAck:
			if s.c.cfg.Spans == nil || s.welcome.Version < 2 {
				return &localError{syncproto.Errorf(syncproto.CodeBadMessage, "spans_ack %d, but the site sent no spans", m.Batch)}
			}
			select {
			case s.spansAcked <- m.Batch:
			case <-ctx.Done():
				return ctx.Err()
			}
		case *syncproto.Heartbeat:
		case *syncproto.Error:
			return m
		default:
			return &localError{syncproto.Errorf(syncproto.CodeBadMessage, "unexpected %s after welcome", msg.Type())}
		}
	}
}

// applyDesired commits a complete revision through Raft.
func (s *session) applyDesired(ctx context.Context, d *site.Desired) error {
	r, res, err := s.c.cfg.Node.ApplyDesired(ctx, d)
	if err != nil {
		return fmt.Errorf("apply desired revision %d: %w", d.Revision, err)
	}
	s.log.Info("applied desired revision", "revision", d.Revision, "full", d.Full, "changes", len(d.Changes),
		"refused", res.Refused, "already_applied", !res.Applied, "index", r.Index)
	return nil
}

// recordAck records central's acknowledgement through Raft.
func (s *session) recordAck(ctx context.Context, seq uint64) error {
	if sent := s.sent.Load(); seq > sent {
		return &localError{syncproto.Errorf(syncproto.CodeBadMessage, "events_ack %d is past the last event sent, %d", seq, sent)}
	}
	if seq <= s.acked {
		return nil
	}
	if err := s.c.cfg.Node.AckEvents(ctx, seq); err != nil {
		return fmt.Errorf("record events ack %d: %w", seq, err)
	}
	s.acked = seq
	s.c.batch.acked()
	return nil
}

// sendEvents sends the outbox from the welcome's stored_seq+1, then each
// event as it is recorded.
func (s *session) sendEvents(ctx context.Context) error {
	db := s.c.cfg.Store
	cursor := s.welcome.StoredSeq
	for {
		changed := db.Changed()
		var events []*store.Event
		if err := db.View(func(tx *store.Tx) (err error) {
			events, err = tx.EventsSince(cursor, s.readLimit())
			return err
		}); err != nil {
			return err
		}
		if len(events) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			}
			continue
		}
		if events[0].Seq != cursor+1 {
			return fmt.Errorf("the outbox starts at event %d, but central has stored up to %d", events[0].Seq, cursor)
		}
		batches, err := syncproto.SplitEvents(wireEvents(events))
		if err != nil {
			return fmt.Errorf("batch events %d-%d: %w", events[0].Seq, events[len(events)-1].Seq, err)
		}
		for _, b := range batches {
			// Sent is raised first: central may ack before Write returns.
			s.sent.Store(b.Last)
			if err := s.write(ctx, b); err != nil {
				return err
			}
			cursor = b.Last
		}
	}
}

// readLimit is how many events sendEvents reads at once: readBatch,
// split into messages of syncproto.MaxEventsPerBatch; or, while the
// batch is cut (batch.go), one message's worth.
func (s *session) readLimit() int {
	if n := s.c.batch.get(); n < syncproto.MaxEventsPerBatch {
		return n
	}
	return readBatch
}

// wireEvents converts stored events to the protocol's: each one's data
// is the stored event. One too big to send (it would hold up every event
// after it) goes without its fields, its message cut.
func wireEvents(events []*store.Event) []syncproto.Event {
	out := make([]syncproto.Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil || len(data) > syncproto.MaxEventSize {
			short := *e
			short.Fields = map[string]string{"truncated": "true"}
			if len(short.Message) > 1024 {
				short.Message = short.Message[:1024]
			}
			data, _ = json.Marshal(&short)
		}
		out[i] = syncproto.Event{Seq: e.Seq, Data: data}
	}
	return out
}

// heartbeat sends a heartbeat every interval and ends the session when
// central has been silent for HeartbeatMisses intervals.
func (s *session) heartbeat(ctx context.Context) error {
	every := s.welcome.HeartbeatInterval()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if silent := time.Since(time.Unix(0, s.lastRecv.Load())); silent > syncproto.HeartbeatMisses*every {
			return fmt.Errorf("central silent for %v (heartbeat %v): the connection is dead", silent.Round(time.Millisecond), every)
		}
		wctx, cancel := context.WithTimeout(ctx, syncproto.HeartbeatMisses*every)
		err := s.write(wctx, &syncproto.Heartbeat{Time: time.Now().UTC(), Report: s.c.selfReport(s.c.lastSeq())})
		cancel()
		if err != nil {
			return err
		}
	}
}
