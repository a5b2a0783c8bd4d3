package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/appliance/internal/sol"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// The serial console: GET /v1/machines/{id}/console upgrades to a
// websocket that carries the machine's serial-over-LAN (package sol).
//
//   - Server to client: first a text frame {"type":"hello", ...} (the
//     session's sol.Status, the node holding it, and what the scrollback
//     holds); then binary frames of raw terminal bytes, the scrollback
//     first; and a text frame {"type":"status", ...} whenever the
//     session's state changes (the BMC link lost or back, the keyboard
//     taken by another viewer).
//   - Client to server: frames (binary or text) of keystrokes, taken only
//     from a client that asked for the keyboard (?write=true) and may
//     have it (an operator's or admin's token; a viewer only watches); otherwise, or while the BMC link
//     is down, it gets a text frame {"type":"error","message":...}.
//   - The end: a close frame whose reason says why; 1012 (service
//     restart) when the node stopped leading: connect again, and the new
//     leader opens a new session, whose scrollback starts then.
//
// The session lives on the leader. A follower proxies the websocket to
// the leader's API rather than redirecting to it: browsers' WebSocket
// follows no redirect, a technician's laptop may reach only the node it
// was given, and the token stays valid on every node. The follower
// passes the client's Authorization header on, and the leader checks it
// again.

// ConsoleConfig configures the serial console route.
type ConsoleConfig struct {
	// Sessions holds the machines' serial-over-LAN sessions (a
	// sol.Manager on every node; the leader's hold them). nil: the route
	// answers 404.
	Sessions Consoles
	// Client dials the leader's API from a follower. nil: a client with
	// net/http's default transport.
	Client *http.Client
}

// Consoles attaches viewers to machines' consoles.
type Consoles interface {
	Attach(ctx context.Context, machineID string, writer bool) (*sol.Viewer, error)
}

const (
	// consoleWriteTimeout bounds each frame written to a client; each
	// frame sets it anew, so a console may stream for days while the
	// client keeps reading.
	consoleWriteTimeout = 30 * time.Second
	// consolePing is how often a quiet client is pinged, and how long it
	// has to answer.
	consolePing = 30 * time.Second
	// consoleMaxFrame bounds a client's frame (keystrokes, a paste).
	consoleMaxFrame = 4096
	// consoleHop marks a console request a follower sent to the leader,
	// which answers it itself or refuses it: never a second hop.
	consoleHop = "X-Outpost-Console-Hop"
	// codeForbidden: the caller may not do this (403).
	codeForbidden = "forbidden"
)

// consoleMessage is a text frame to the client.
type consoleMessage struct {
	Type string `json:"type"` // hello, status, error
	sol.Status
	// Node is the node holding the session (hello).
	Node string `json:"node,omitempty"`
	// Scrollback says what the binary frames that follow the hello
	// begin with (hello).
	Scrollback string `json:"scrollback,omitempty"`
	// Message explains an error.
	Message string `json:"message,omitempty"`
}

// console serves GET /v1/machines/{id}/console.
func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	write, ok := s.consoleRequest(w, r)
	if !ok {
		return
	}
	if !s.cluster.IsLeader() {
		s.proxyConsole(w, r)
		return
	}
	v, err := s.consoles.Sessions.Attach(r.Context(), r.PathValue("id"), write)
	if errors.Is(err, sol.ErrNotLeader) {
		s.proxyConsole(w, r)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer v.Close()
	ws := acceptConsole(w, r)
	if ws == nil {
		return
	}
	defer ws.CloseNow()
	s.serveViewer(r.Context(), ws, v)
}

// consoleRequest checks a console request before anything is attached
// or proxied, and reports whether the caller asks for the keyboard; if
// not ok it has answered.
func (s *Server) consoleRequest(w http.ResponseWriter, r *http.Request) (write, ok bool) {
	if s.consoles.Sessions == nil {
		s.writeError(w, r, errs.NotFound("serial console", r.PathValue("id")))
		return false, false
	}
	if v := r.URL.Query().Get("write"); v != "" {
		var err error
		if write, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, r, errs.Invalid("write", "%q is not true or false", v))
			return false, false
		}
	}
	if c, _ := httpapi.CallerOf(r.Context()); write && !c.Role.Allows(access.Operator) {
		httpapi.WriteJSON(w, http.StatusForbidden, errorBody{Error: &errs.Error{Code: codeForbidden,
			Message: fmt.Sprintf("a %s may watch this console but not type into it: typing takes an %s's token", c.Role, access.Operator)}})
		return false, false
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		// A plain GET opens no session.
		httpapi.WriteJSON(w, http.StatusUpgradeRequired, errorBody{Error: errs.Invalid("",
			"the console is a websocket: connect with a WebSocket client (Upgrade: websocket)")})
		return false, false
	}
	return write, true
}

// acceptConsole upgrades the request; nil if it failed (Accept answered).
func acceptConsole(w http.ResponseWriter, r *http.Request) *websocket.Conn {
	// The server's deadlines are for requests: a console's frames set
	// their own (consoleWriteTimeout), and a console may be watched
	// without a keystroke for hours (pings show the client is there).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil
	}
	ws.SetReadLimit(consoleMaxFrame)
	return ws
}

// serveViewer runs one client of a console until either ends.
func (s *Server) serveViewer(ctx context.Context, ws *websocket.Conn, v *sol.Viewer) {
	st := v.Status()
	node := s.cluster.Status().ID
	hello := consoleMessage{Type: "hello", Status: st, Node: node, Scrollback: fmt.Sprintf(
		"what the console printed since %s, when node %s opened this session; what a previous leader held is lost",
		st.Since.Format(time.RFC3339), node)}
	if err := writeFrame(ctx, ws, websocket.MessageText, hello); err != nil {
		return
	}
	runFrames(ctx, func(err error) {
		v.Close() // ends consoleOut's Read
		ws.Close(closeCode(err))
	},
		func(ctx context.Context) error { return consoleOut(ctx, ws, v) },
		func(ctx context.Context) error { return consoleStatus(ctx, ws, v) },
		func(ctx context.Context) error { return consoleIn(ctx, ws, v) },
		func(ctx context.Context) error { return keepAlive(ctx, ws) })
}

// runFrames runs each of loops until one returns or parent ends (the
// server shutting down: sol.ErrClosed), calls end with why, then ends
// the others. end closes the websockets: before the loops' context
// ends, as a read whose context ends drops its connection without the
// close frame that tells the client why.
func runFrames(parent context.Context, end func(error), loops ...func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	defer cancel()
	done := make(chan error, len(loops)+1)
	for _, loop := range loops {
		go func() { done <- loop(ctx) }()
	}
	go func() {
		select {
		case <-parent.Done():
			done <- sol.ErrClosed
		case <-ctx.Done():
			done <- ctx.Err()
		}
	}()
	end(<-done)
	cancel()
	for range loops {
		<-done
	}
}

// consoleOut sends what the console prints as binary frames.
func consoleOut(ctx context.Context, ws *websocket.Conn, v *sol.Viewer) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := v.Read(buf)
		if n > 0 {
			if werr := writeFrame(ctx, ws, websocket.MessageBinary, buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}

// consoleStatus sends the session's status when it changes.
func consoleStatus(ctx context.Context, ws *websocket.Conn, v *sol.Viewer) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-v.Changed():
			if err := writeFrame(ctx, ws, websocket.MessageText, consoleMessage{Type: "status", Status: v.Status()}); err != nil {
				return err
			}
		}
	}
}

// keepAlive pings the client every consolePing: one that does not
// answer within consolePing is gone (a laptop closed, a cable pulled).
func keepAlive(ctx context.Context, ws *websocket.Conn) error {
	tick := time.NewTicker(consolePing)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, consolePing)
		err := ws.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
}

// consoleIn types what the client sends.
func consoleIn(ctx context.Context, ws *websocket.Conn, v *sol.Viewer) error {
	for {
		_, p, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		_, err = v.Write(p)
		switch {
		case errors.Is(err, sol.ErrReadOnly), errors.Is(err, sol.ErrNotConnected):
			msg := consoleMessage{Type: "error", Status: v.Status(), Message: strings.TrimPrefix(err.Error(), "sol: ")}
			if err := writeFrame(ctx, ws, websocket.MessageText, msg); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
}

// writeFrame writes one frame (JSON for a text frame) within
// consoleWriteTimeout.
func writeFrame(ctx context.Context, ws *websocket.Conn, typ websocket.MessageType, v any) error {
	p, ok := v.([]byte)
	if !ok {
		var err error
		if p, err = json.Marshal(v); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, consoleWriteTimeout)
	defer cancel()
	return ws.Write(ctx, typ, p)
}

// closeCode is the close frame for why a console ended (at most 123
// bytes of reason).
func closeCode(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return ce.Code, ce.Reason
	case errors.Is(err, sol.ErrNotLeader):
		return websocket.StatusServiceRestart, "this node stopped leading: connect again (the scrollback held here is lost)"
	case errors.Is(err, sol.ErrTooSlow):
		return websocket.StatusTryAgainLater, "the client fell too far behind the console: connect again"
	case errors.Is(err, sol.ErrClosed), errors.Is(err, context.Canceled):
		return websocket.StatusGoingAway, "the console closed"
	}
	if e, ok := errs.AsError(err); ok {
		return websocket.StatusNormalClosure, truncate(e.Message, 123)
	}
	return websocket.StatusInternalError, "console error; see the appliance log"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// proxyConsole serves the console from the leader, on a follower.
func (s *Server) proxyConsole(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(consoleHop) != "" {
		s.writeError(w, r, &errs.Error{Code: codeUnavailable, Message: "this node does not lead the site any more; try again"})
		return
	}
	target, err := s.leaderConsoleURL(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hdr := http.Header{consoleHop: {"1"}}
	if a := r.Header.Get("Authorization"); a != "" {
		hdr.Set("Authorization", a)
	}
	dctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	up, resp, err := websocket.Dial(dctx, target, &websocket.DialOptions{HTTPClient: s.consoles.Client, HTTPHeader: hdr})
	if err != nil {
		relayRefusal(w, resp, err)
		return
	}
	defer up.CloseNow()
	up.SetReadLimit(1 << 20)
	ws := acceptConsole(w, r)
	if ws == nil {
		return
	}
	defer ws.CloseNow()
	relayConsole(r.Context(), ws, up)
}

// leaderConsoleURL is the request's URL on the leader's API.
func (s *Server) leaderConsoleURL(r *http.Request) (string, error) {
	base := ""
	for _, m := range s.cluster.Status().Members {
		if m.Leader {
			base = m.APIAddr
		}
	}
	u, err := url.Parse(base)
	if base == "" || err != nil || u.Host == "" {
		return "", &errs.Error{Code: codeUnavailable, Message: "the cluster has no leader whose API is known; try again"}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawQuery = r.URL.RawQuery
	return u.String(), nil
}

// relayRefusal answers as the leader did when it refused the upgrade
// (404, 403, ...), or 503 when it could not be reached.
func relayRefusal(w http.ResponseWriter, resp *http.Response, err error) {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
		body, _ := io.ReadAll(resp.Body)
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
		return
	}
	httpapi.WriteError(w, &errs.Error{Code: codeUnavailable, Message: "the leader's console could not be reached: " + err.Error()})
}

// relayConsole copies frames both ways between a client and the leader
// until either ends, then closes the other with the same code.
func relayConsole(ctx context.Context, client, leader *websocket.Conn) {
	runFrames(ctx, func(err error) {
		code, reason := websocket.StatusGoingAway, "the console closed"
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			code, reason = ce.Code, ce.Reason
		}
		client.Close(code, reason)
		leader.Close(code, reason)
	},
		func(ctx context.Context) error { return relayFrames(ctx, leader, client) },
		func(ctx context.Context) error { return relayFrames(ctx, client, leader) },
		func(ctx context.Context) error { return keepAlive(ctx, client) }) // the leader pings us
}

// relayFrames copies frames from src to dst.
func relayFrames(ctx context.Context, src, dst *websocket.Conn) error {
	for {
		typ, p, err := src.Read(ctx)
		if err != nil {
			return err
		}
		if err := writeFrame(ctx, dst, typ, p); err != nil {
			return err
		}
	}
}
