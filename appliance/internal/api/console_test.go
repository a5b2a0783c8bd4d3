package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/sol"
	"github.com/outposthq/outpost/internal/access"
)

// consoleNode serves n's API again, with serial consoles from a
// sol.Manager, as the node cluster says it is (n's own membership, or a
// follower's view). Its requests' context ends with base, as
// applianced's end when it stops.
func consoleNode(t *testing.T, base context.Context, n *apptest.Node, cluster api.Cluster, cfg api.ConsoleConfig) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(api.New(api.Config{Site: n.Site.Proposer, Store: n.DB, Cluster: cluster, SiteKey: n.Key,
		Log: slog.New(slog.NewTextHandler(io.MultiWriter(n.Logs, t.Output()), nil)), Console: cfg}).Handler())
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// leadership is whether the consoles' Manager thinks its node leads.
type leadership struct{ atomic.Bool }

func (l *leadership) IsLeader() bool { return l.Load() }

// manager runs a sol.Manager of n's store until the test ends.
func manager(t *testing.T, n *apptest.Node, lead sol.Leader, bmc sol.BMC) *sol.Manager {
	m := sol.New(sol.Config{Store: n.DB, Key: n.Key, Leader: lead, BMC: bmc, Log: slog.New(slog.NewTextHandler(n.Logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Close() })
	return m
}

// follower is a node of n's cluster that does not lead: the leader is n,
// whose API (with consoles) is at leaderURL.
type follower struct {
	api.Cluster
	leaderURL string
}

func (f follower) IsLeader() bool { return false }

func (f follower) Status() site.Status {
	st := f.Cluster.Status()
	st.ID, st.State, st.LeaderID = "n2", "Follower", "n1"
	st.Members = []site.MemberStatus{{ID: "n1", APIAddr: f.leaderURL, Leader: true}, {ID: "n2", APIAddr: "http://192.0.2.1:1"}}
	return st
}

// TestConsoleRefused: what the console route refuses before upgrading,
// each with its status and a JSON error.
func TestConsoleRefused(t *testing.T) {
	n := apptest.Start(t)
	call(t, n, "PUT", "/v1/machines/nobmc", n.Token, `{"hostname":"nobmc","interfaces":[{"mac":"02:00:00:00:00:01"}]}`)
	call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"hostname":"m1","interfaces":[{"mac":"02:00:00:00:00:02"}],"bmc":{"address":"127.0.0.1:1","username":"admin","password":"pw"}}`)
	lead := &leadership{}
	lead.Store(true)
	withConsoles := &apptest.Node{URL: consoleNode(t, t.Context(), n, n.Node, api.ConsoleConfig{Sessions: manager(t, n, lead, nil)})}
	viewer := createToken(t, n, "tech-laptop", access.Viewer)
	operator := createToken(t, n, "tech-lead", access.Operator)
	without := &apptest.Node{URL: consoleNode(t, t.Context(), n, n.Node, api.ConsoleConfig{})}
	tests := map[string]struct {
		node   *apptest.Node
		path   string
		token  string
		header []string
		status int
		code   string
	}{
		"no token":         {withConsoles, "/v1/machines/m1/console", "", nil, 401, "unauthorized"},
		"unknown machine":  {withConsoles, "/v1/machines/ghost/console", n.Token, nil, 404, "not_found"},
		"no BMC":           {withConsoles, "/v1/machines/nobmc/console", n.Token, nil, 409, "conflict"},
		"bad write":        {withConsoles, "/v1/machines/m1/console?write=maybe", n.Token, nil, 400, "invalid"},
		"viewer watches":   {withConsoles, "/v1/machines/m1/console?write=false", viewer, nil, 426, "invalid"},
		"viewer types":     {withConsoles, "/v1/machines/m1/console?write=true", viewer, nil, 403, "forbidden"},
		"no consoles here": {without, "/v1/machines/m1/console", n.Token, nil, 404, "not_found"},
		"not a websocket":  {withConsoles, "/v1/machines/m1/console?write=1", operator, nil, 426, "invalid"},
	}
	// A websocket's opening handshake: what is refused is refused before
	// the upgrade.
	upgrade := []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13",
		"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			header := tc.header
			if name != "not a websocket" && name != "viewer watches" {
				header = append(header, upgrade...)
			}
			status, body := call(t, tc.node, "GET", tc.path, tc.token, "", header...)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.code != "" {
				if e := decodeErr(t, body); e.Error.Code != tc.code {
					t.Errorf("error code %q, want %q: %s", e.Error.Code, tc.code, body)
				}
			}
		})
	}
}

// frames reads a console websocket in the background: binary frames
// into out, text frames (JSON) into msgs.
type frames struct {
	ws   *websocket.Conn
	mu   sync.Mutex
	out  []byte
	msgs []map[string]any
	err  error         // why the websocket ended
	more chan struct{} // capacity 1: a frame came, or the end
}

func dialConsole(ctx context.Context, t *testing.T, base, machine, token, query string) *frames {
	t.Helper()
	ws, resp, err := websocket.Dial(ctx, base+"/v1/machines/"+machine+"/console"+query,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("console websocket: %v %s", err, body)
	}
	t.Cleanup(func() { ws.CloseNow() })
	f := &frames{ws: ws, more: make(chan struct{}, 1)}
	go f.read()
	return f
}

func (f *frames) read() {
	for {
		typ, p, err := f.ws.Read(context.Background())
		var m map[string]any
		if err == nil && typ == websocket.MessageText {
			if jerr := json.Unmarshal(p, &m); jerr != nil {
				err = fmt.Errorf("text frame %q is not JSON: %v", p, jerr)
			}
		}
		f.mu.Lock()
		switch {
		case err != nil:
			f.err = err
		case m != nil:
			f.msgs = append(f.msgs, m)
		default:
			f.out = append(f.out, p...)
		}
		f.mu.Unlock()
		select {
		case f.more <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// wait waits until done says so, reporting false if ctx ends first; a
// websocket that ends first fails the test, unless done says so then.
func (f *frames) wait(ctx context.Context, t *testing.T, what string, done func(*frames) bool) bool {
	t.Helper()
	for {
		f.mu.Lock()
		ok, err := done(f), f.err
		f.mu.Unlock()
		switch {
		case ok:
			return true
		case err != nil:
			t.Fatalf("waiting for %s: the websocket ended: %v; it carried %q and %v", what, err, f.out, f.msgs)
		}
		select {
		case <-f.more:
		case <-ctx.Done():
			return false
		}
	}
}

// until is wait that fails the test when ctx ends first.
func (f *frames) until(ctx context.Context, t *testing.T, what string, done func(*frames) bool) {
	t.Helper()
	if !f.wait(ctx, t, what, done) {
		t.Fatalf("no %s: %v; the websocket carried %q and %v", what, ctx.Err(), f.text(), f.messages())
	}
}

// shows says whether the terminal bytes hold s (f.mu held).
func shows(s string) func(*frames) bool {
	return func(f *frames) bool { return bytes.Contains(f.out, []byte(s)) }
}

// ended says whether the websocket ended (f.mu held).
func ended(f *frames) bool { return f.err != nil }

// message is the last text frame of type typ, or nil (f.mu held).
func (f *frames) message(typ string) map[string]any {
	for i := len(f.msgs) - 1; i >= 0; i-- {
		if f.msgs[i]["type"] == typ {
			return f.msgs[i]
		}
	}
	return nil
}

// last is message, for the test's goroutine.
func (f *frames) last(typ string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.message(typ)
}

func (f *frames) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.out)
}

func (f *frames) messages() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.msgs...)
}

func (f *frames) typeKeys(ctx context.Context, keys string) error {
	for _, k := range []byte(keys) {
		if err := f.ws.Write(ctx, websocket.MessageBinary, []byte{k}); err != nil {
			return err
		}
	}
	return nil
}

// probe types lines on w until the VM echoes one whole to f
// (lab.ProbeEcho), and returns it.
func (f *frames) probe(ctx context.Context, t *testing.T, w *frames, base string) string {
	t.Helper()
	line, err := lab.ProbeEcho(ctx, func(line string) error { return w.typeKeys(ctx, line+"\r") },
		func(lctx context.Context, s string) bool { return f.wait(lctx, t, "the echo", shows(s)) }, base)
	if err != nil {
		t.Fatalf("%v; the console shows:\n%s", err, f.text())
	}
	return line
}

// TestConsoleWebsocket: the console route against a QEMU VM behind
// ipmi_sim. On the leader, an operator reads the boot messages and
// types a key that reaches the VM; through a follower, which proxies to
// the leader, a viewer gets the scrollback, sees what the operator
// types, and is refused the keyboard; when the leader stops leading
// both get close code 1012. The BMC password is in no log.
func TestConsoleWebsocket(t *testing.T) {
	ns, sim, _ := lab.StartConsoleVM(t, lab.BuildImages(t), "console")

	n := apptest.Start(t)
	code, body := call(t, n, "PUT", "/v1/machines/vm1", n.Token, fmt.Sprintf(
		`{"hostname":"vm1","interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":%q,"username":%q,"password":%q}}`,
		sim.Addr, sim.Username, sim.Password))
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("put machine: %d %s", code, body)
	}
	lead := &leadership{}
	lead.Store(true)
	consoles := api.ConsoleConfig{Sessions: manager(t, n, lead, sol.IPMI{Dial: ns.DialContext})}
	leaderURL := consoleNode(t, t.Context(), n, n.Node, consoles)
	followerURL := consoleNode(t, t.Context(), n, follower{Cluster: n.Node, leaderURL: leaderURL}, consoles)
	stopping, stop := context.WithCancel(t.Context())
	stoppingURL := consoleNode(t, stopping, n, n.Node, consoles) // a server that stops
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	op := dialConsole(ctx, t, leaderURL, "vm1", n.Token, "?write=true")
	op.until(ctx, t, "the hello", func(f *frames) bool { return f.message("hello") != nil })
	if h := op.last("hello"); h["writer"] != true || h["node"] != "n1" || h["machine"] != "vm1" || h["scrollback"] == "" {
		t.Errorf("hello %v, want writer true, node n1, machine vm1, a scrollback note", h)
	}
	op.until(ctx, t, "connected", func(f *frames) bool { m := f.message("status"); return m != nil && m["state"] == "connected" })
	if _, err := sim.IPMITool(ctx, "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	op.until(ctx, t, "boot messages", shows("outpost-installer:"))
	base := fmt.Sprintf("console-probe-%d", os.Getpid())
	probe := op.probe(ctx, t, op, base)

	viewer := dialConsole(ctx, t, followerURL, "vm1", n.Token, "")
	viewer.until(ctx, t, "the scrollback through the follower", shows(probe+"\r"))
	if h := viewer.last("hello"); h == nil || h["writer"] != false || h["node"] != "n1" {
		t.Errorf("hello through the follower %v, want writer false from n1", h)
	}
	if !strings.Contains(viewer.text(), "outpost-installer:") {
		t.Error("the scrollback lacks the boot messages")
	}
	if err := viewer.typeKeys(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	viewer.until(ctx, t, "the refusal", func(f *frames) bool { return f.message("error") != nil })
	viewer.probe(ctx, t, op, base+"-op")

	// A server that stops closes its consoles, saying so; the others go on.
	leaving := dialConsole(ctx, t, stoppingURL, "vm1", n.Token, "")
	leaving.until(ctx, t, "the scrollback", shows(probe+"\r"))
	stop()
	leaving.until(ctx, t, "the end", ended)
	if code := websocket.CloseStatus(leaving.err); code != websocket.StatusGoingAway {
		t.Errorf("the console of a server that stops ended with %v, want close code 1001", leaving.err)
	}
	viewer.probe(ctx, t, op, base+"-after-stop")

	lead.Store(false)
	for name, f := range map[string]*frames{"leader's client": op, "follower's client": viewer} {
		f.until(ctx, t, "the end", ended)
		var ce websocket.CloseError
		if !errors.As(f.err, &ce) || ce.Code != websocket.StatusServiceRestart {
			t.Errorf("%s ended with %v, want close code 1012", name, f.err)
		}
	}
	if strings.Contains(n.Logs.String(), sim.Password) {
		t.Error("the BMC password is in the node's log")
	}
}
