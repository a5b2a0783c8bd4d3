package hub

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/syncproto"
)

// Before its hello is verified, a connection may not send a frame larger
// than HelloLimit: one is closed with status 1009 and never reaches the
// store. After the welcome, a site sends frames as large as the protocol
// allows.
func TestPreAuthFrameLimit(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("fra-1")
	c := f.dial()
	big := `{"type":"hello","body":{"site":"fra-1","pad":"` + strings.Repeat("x", HelloLimit) + `"}}`
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(big)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.conn.Read(ctx)
	if st := websocket.CloseStatus(err); st != websocket.StatusMessageTooBig {
		t.Fatalf("a %d-byte frame before the hello: %v (status %d), want closed with %d", len(big), err, st, websocket.StatusMessageTooBig)
	}

	// A verified site may send large frames: a batch of events larger
	// than HelloLimit is stored.
	s, _ := f.connect(hello("fra-1", cred, 0, 0, 0))
	b := events(1, 200)
	for i := range b.Events {
		b.Events[i].Data = []byte(`{"pad":"` + strings.Repeat("y", 200) + `"}`)
	}
	s.send(b)
	if ack, ok := s.recv().(*syncproto.EventsAck); !ok || ack.Seq != 200 {
		t.Fatalf("answer to a large batch after the welcome: %#v", ack)
	}
}

// At most MaxPending connections are in their handshake at once; one
// more is answered 503 with Retry-After before the websocket opens, and
// gets in once a slot is free.
func TestMaxPendingHandshakes(t *testing.T) {
	f := newFixture(t, Config{MaxPending: 2})
	cred := f.site("fra-1")
	a, b := f.dial(), f.dial() // silent: in their handshake
	centraltest.WaitFor(t, "two pending handshakes", func() bool {
		f.hub.mu.Lock()
		defer f.hub.mu.Unlock()
		return len(f.hub.pending) == 2
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + syncproto.Path
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third handshake: %v (%+v), want 503 with Retry-After", err, resp)
	}
	if !strings.Contains(f.logs.String(), "too many connections in their handshake") {
		t.Error("the refusal is not logged")
	}
	a.conn.CloseNow()
	b.send(hello("fra-1", cred, 0, 0, 0))
	if _, ok := b.recv().(*syncproto.Welcome); !ok {
		t.Fatal("the pending site was not welcomed")
	}
	// Both slots are free again: a new site connects.
	centraltest.WaitFor(t, "the handshakes to end", func() bool { return len(f.hub.handshakes) == 0 })
	if _, w := f.connect(hello("fra-1", cred, 0, 0, 0)); w == nil {
		t.Fatal("no welcome")
	}
}
