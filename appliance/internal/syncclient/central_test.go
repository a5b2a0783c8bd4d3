package syncclient

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// fakeCentral is central as the protocol describes it, small: it checks
// the credential, stores events only in sequence, acknowledges them,
// sends the revisions after the hello's applied one and records what
// the site acknowledged.
type fakeCentral struct {
	t          *testing.T
	srv        *httptest.Server
	credential string
	heartbeat  time.Duration

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced at every change
	hellos    []syncproto.Hello
	stored    []syncproto.Event // stored[i].Seq == i+1
	revisions [][]syncproto.Change
	acked     []uint64 // desired_ack revisions, in order
	conns     map[*websocket.Conn]bool
	down      bool // answer 503
	silent    int  // so many next sessions send and answer nothing after the welcome
	noAcks    bool // store events but do not acknowledge them
	holdBack  int  // send desired state only once this many sessions were welcomed
	welcomed  int
	failures  []string
	// siteErrors are the codes of the errors the site sent.
	siteErrors []string
	// accepted counts the TCP connections central accepted, requests
	// or not.
	accepted int
	// version is the protocol version central welcomes with (0:
	// syncproto.Version).
	version int
	// spans are the spans stored, by trace and span id; spanMsgs the
	// spans messages received (their sizes); noSpanAcks: keep spans
	// without acknowledging them.
	spans      map[string]tracing.Span
	spanMsgs   []int
	noSpanAcks bool
}

func newFakeCentral(t *testing.T, credential string) *fakeCentral {
	f := &fakeCentral{t: t, credential: credential, heartbeat: 200 * time.Millisecond,
		changed: make(chan struct{}), conns: map[*websocket.Conn]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc(syncproto.Path, f.serve)
	// Central serves TLS; the client verifies it (roots).
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			f.update(func() { f.accepted++ })
		}
	}
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	f.srv.StartTLS()
	t.Cleanup(func() {
		f.cut()
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.failures {
			t.Errorf("fake central: %s", s)
		}
	})
	return f
}

// roots is what a client is given to verify the fake's certificate.
func (f *fakeCentral) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

// update changes the fake's state under its lock and wakes waiters.
func (f *fakeCentral) update(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitFor waits until cond, read under the lock, holds.
func (f *fakeCentral) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			f.t.Fatalf("fake central: timed out waiting for %s", what)
		}
	}
}

// addRevision records a new revision of desired state.
func (f *fakeCentral) addRevision(changes ...syncproto.Change) {
	f.update(func() { f.revisions = append(f.revisions, changes) })
}

// cut closes every connection at once, as a network failure would.
func (f *fakeCentral) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.CloseNow()
	}
}

func (f *fakeCentral) fail(format string, args ...any) {
	f.update(func() { f.failures = append(f.failures, fmt.Sprintf(format, args...)) })
}

func (f *fakeCentral) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(syncproto.MaxFrameSize)
	f.update(func() { f.conns[c] = true })
	defer f.update(func() { delete(f.conns, c) })
	ctx := r.Context()

	msg, err := readMsg(ctx, c)
	if err != nil {
		return
	}
	h, ok := msg.(*syncproto.Hello)
	if !ok {
		f.fail("first message %T, want hello", msg)
		return
	}
	if subtle.ConstantTimeCompare([]byte(h.Credential), []byte(f.credential)) != 1 {
		f.update(func() { f.hellos = append(f.hellos, *h) })
		writeMsg(ctx, c, syncproto.Errorf(syncproto.CodeUnauthorized, "unknown site or wrong credential"))
		c.Close(websocket.StatusPolicyViolation, "unauthorized")
		return
	}
	var welcome *syncproto.Welcome
	f.update(func() {
		f.hellos = append(f.hellos, *h)
		v := f.version
		if v == 0 {
			v = syncproto.Version
		}
		welcome = &syncproto.Welcome{Version: v, StoredSeq: uint64(len(f.stored)),
			NextRevision: h.AppliedRevision + 1, HeartbeatMillis: f.heartbeat.Milliseconds()}
		f.welcomed++
	})
	if err := writeMsg(ctx, c, welcome); err != nil {
		return
	}
	var silent bool
	f.update(func() {
		if silent = f.silent > 0; silent {
			f.silent--
		}
	})
	if silent {
		// Hold the connection open, quiet, until the site drops it.
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go f.sendDesired(ctx, c, h.AppliedRevision)
	go func() {
		t := time.NewTicker(f.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				writeMsg(ctx, c, &syncproto.Heartbeat{Time: time.Now()})
			}
		}
	}()
	for {
		msg, err := readMsg(ctx, c)
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *syncproto.Events:
			var ack uint64
			var noAcks bool
			f.update(func() {
				unstored, err := m.Unstored(uint64(len(f.stored)))
				if err != nil {
					f.failures = append(f.failures, err.Error())
					return
				}
				f.stored = append(f.stored, unstored...)
				ack, noAcks = uint64(len(f.stored)), f.noAcks
			})
			if ack > 0 && !noAcks {
				writeMsg(ctx, c, &syncproto.EventsAck{Seq: ack})
			}
		case *syncproto.Spans:
			var noAcks bool
			f.update(func() {
				if f.spans == nil {
					f.spans = map[string]tracing.Span{}
				}
				f.spanMsgs = append(f.spanMsgs, len(m.Spans))
				for _, raw := range m.Spans {
					var sp tracing.Span
					if err := json.Unmarshal(raw, &sp); err != nil || sp.Validate() != nil {
						f.failures = append(f.failures, fmt.Sprintf("a bad span in spans %d: %s", m.Batch, raw))
						continue
					}
					f.spans[sp.TraceID+sp.SpanID] = sp
				}
				noAcks = f.noSpanAcks
			})
			if !noAcks {
				writeMsg(ctx, c, &syncproto.SpansAck{Batch: m.Batch})
			}
		case *syncproto.DesiredAck:
			f.update(func() { f.acked = append(f.acked, m.Revision) })
		case *syncproto.Heartbeat:
		case *syncproto.Error:
			f.update(func() { f.siteErrors = append(f.siteErrors, m.Code) })
			return
		default:
			f.fail("unexpected %T from the site", msg)
			return
		}
	}
}

// sendDesired sends the revisions after applied, then each new one.
func (f *fakeCentral) sendDesired(ctx context.Context, c *websocket.Conn, applied uint64) {
	next := applied + 1
	for {
		f.mu.Lock()
		var changes []syncproto.Change
		have := next <= uint64(len(f.revisions)) && f.welcomed >= f.holdBack
		if have {
			changes = f.revisions[next-1]
		}
		ch := f.changed
		f.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			continue
		}
		parts, err := syncproto.SplitDesired(next, false, changes)
		if err != nil {
			f.fail("split revision %d: %v", next, err)
			return
		}
		for _, p := range parts {
			if writeMsg(ctx, c, p) != nil {
				return
			}
		}
		next++
	}
}

func readMsg(ctx context.Context, c *websocket.Conn) (syncproto.Message, error) {
	_, frame, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	m, err := syncproto.Decode(frame)
	if err != nil {
		return nil, err
	}
	return m, syncproto.CheckSender(m, syncproto.Site)
}

func writeMsg(ctx context.Context, c *websocket.Conn, m syncproto.Message) error {
	frame, err := syncproto.Encode(m)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, frame)
}
