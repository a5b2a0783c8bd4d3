package sim

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/syncproto"
)

// Site is a simulated site: one websocket to central speaking syncproto
// as an appliance's sync client would, minus the appliance. It says
// hello, heartbeats, acknowledges every revision once its last part is
// in, and hands each change it receives to its caller. It sends the
// events it records (Record; site_events.go), numbered densely from
// central's stored sequence on, one batch in flight at a time, and
// forgets each once central acknowledges it; with AnswerOrders, it
// answers each order it receives with the events a real site's order
// makes.
type Site struct {
	ID      string // the site's id at central
	conn    *websocket.Conn
	welcome *syncproto.Welcome
	ev      eventLog
}

// DialSite dials central's sync websocket at url (ws://host/v1/sync) as
// site id with credential cred, and completes the handshake within 30 s.
// Errors start with the site's id.
func DialSite(ctx context.Context, url, id, cred string) (*Site, error) {
	return DialSiteVia(ctx, nil, url, id, cred)
}

// DialSiteVia is DialSite through client (nil: http.DefaultClient): a
// transport dialing from a chosen local address makes many sites come
// from many sources, as a fleet's do.
func DialSiteVia(ctx context.Context, client *http.Client, url, id, cred string) (*Site, error) {
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(hctx, url, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		return nil, fmt.Errorf("%s: dial: %w", id, err)
	}
	conn.SetReadLimit(syncproto.MaxFrameSize)
	h := &syncproto.Hello{Site: id, Credential: syncproto.Credential(cred), Versions: syncproto.Supported}
	if err := writeMsg(hctx, conn, h); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("%s: hello: %w", id, err)
	}
	m, err := readMsg(hctx, conn)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("%s: welcome: %w", id, err)
	}
	w, ok := m.(*syncproto.Welcome)
	if !ok {
		conn.CloseNow()
		return nil, fmt.Errorf("%s: central answered the hello with %s: %v", id, m.Type(), m)
	}
	if err := w.Answers(h); err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	st := &Site{ID: id, conn: conn, welcome: w}
	st.ev.init(w.StoredSeq)
	return st, nil
}

// Run heartbeats at the interval central's welcome set, calls changed
// with each change of each revision as it arrives, and acknowledges the
// revision after its last part; it returns when ctx ends or the
// connection fails, or with central's error message.
func (s *Site) Run(ctx context.Context, changed func(syncproto.Change)) error {
	go s.sendEvents(ctx)
	go func() {
		tick := time.NewTicker(s.welcome.HeartbeatInterval())
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := writeMsg(ctx, s.conn, &syncproto.Heartbeat{Time: time.Now().UTC()}); err != nil {
					return
				}
			}
		}
	}()
	for {
		m, err := readMsg(ctx, s.conn)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *syncproto.Desired:
			for _, c := range m.Changes {
				changed(c)
				if c.Kind == syncproto.KindOrder && !c.Deleted && s.ev.answer.Load() {
					s.answerOrder(c)
				}
			}
			if !m.More {
				if err := writeMsg(ctx, s.conn, &syncproto.DesiredAck{Revision: m.Revision}); err != nil {
					return err
				}
			}
		case *syncproto.EventsAck:
			s.ev.acked(m.Seq)
		case *syncproto.Error:
			return fmt.Errorf("central sent error %s: %s", m.Code, m.Message)
		}
	}
}

// Close closes the connection at once.
func (s *Site) Close() error { return s.conn.CloseNow() }

func writeMsg(ctx context.Context, conn *websocket.Conn, m syncproto.Message) error {
	frame, err := syncproto.Encode(m)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, frame)
}

func readMsg(ctx context.Context, conn *websocket.Conn) (syncproto.Message, error) {
	_, frame, err := conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	return syncproto.Decode(frame)
}
