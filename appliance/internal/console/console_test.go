package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/console"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/httpapi/routetest"
	"github.com/outposthq/outpost/internal/webui/webuitest"
)

// env is a real in-process node with the console in front of its API.
type env struct {
	n   *apptest.Node
	srv *httptest.Server
	url string
}

func start(t *testing.T, tls bool) *env {
	t.Helper()
	n := apptest.Start(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	web, err := console.New(console.Config{Store: n.DB, Site: n.Site.Proposer, Cluster: n.Node, SiteKey: n.Key,
		Lookup: api.TokenLookup(n.DB), API: api.New(api.Config{Site: n.Site.Proposer, Store: n.DB, Cluster: n.Node,
			SiteKey: n.Key, Log: log}).Handler(), Log: log, Traces: n.Node})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(web.Handler())
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return &env{n: n, srv: srv, url: srv.URL}
}

// token creates a token of role through the API and returns it.
func (e *env) token(t *testing.T, name, role, expiresIn string) string {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"role":%q,"expires_in":%q}`, name, role, expiresIn)
	req, _ := http.NewRequest(http.MethodPost, e.n.URL+"/v1/tokens", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.n.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out httpapi.TokenCreated
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create token: %d %v", resp.StatusCode, err)
	}
	return out.Token
}

// do sends a request with cookies and headers, following no redirect.
func (e *env) do(t *testing.T, method, path string, form url.Values, hdr map[string]string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	return e.client().Do(t, method, path, form, hdr, cookies...)
}

func (e *env) client() webuitest.Client { return webuitest.Client{URL: e.url, HTTP: e.srv.Client()} }

func (e *env) origin() map[string]string { return e.client().Origin() }

// signIn signs in with token and returns the session cookie and the
// session's CSRF token, read from a page.
func (e *env) signIn(t *testing.T, token string) (*http.Cookie, string) {
	t.Helper()
	return e.client().SignIn(t, token, "/site")
}

func TestSignInPage(t *testing.T) {
	e := start(t, false)
	resp, body := e.do(t, http.MethodGet, "/", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`<form method="post" action="/signin"`, `name="token"`, `data-test="signin-submit"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the sign-in page lacks %s", want)
		}
	}
	// A page without a session goes to the sign-in page.
	resp, _ = e.do(t, http.MethodGet, "/machines", nil, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/?next=") {
		t.Errorf("GET /machines without a session: %d to %q, want 303 to the sign-in page", resp.StatusCode, loc)
	}
	// A wrong token: 401, the page says so, no cookie.
	resp, body = e.do(t, http.MethodPost, "/signin", url.Values{"token": {"abcd.wrong"}}, e.origin())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "opens nothing") || len(resp.Cookies()) != 0 {
		t.Errorf("a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// From another site: refused.
	tok := e.token(t, "tech", "viewer", "1h")
	resp, _ = e.do(t, http.MethodPost, "/signin", url.Values{"token": {tok}}, map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("a sign-in from another origin: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// The API's probes keep their paths beside the console: /healthz and
// /metrics answer as the API does, without a session.
func TestProbes(t *testing.T) {
	e := start(t, false)
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, body := e.do(t, http.MethodGet, path, nil, nil)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || strings.HasPrefix(ct, "text/html") || strings.Contains(body, "<form") {
			t.Errorf("GET %s: %d %s %.200s", path, resp.StatusCode, ct, body)
		}
	}
	// The API counted the probe: /metrics is the API's registry.
	if _, body := e.do(t, http.MethodGet, "/metrics", nil, nil); !strings.Contains(body, "outpost_") {
		t.Errorf("GET /metrics after a request: %.300s", body)
	}
}

func TestSessionCookie(t *testing.T) {
	for name, tls := range map[string]bool{"http": false, "https": true} {
		t.Run(name, func(t *testing.T) {
			e := start(t, tls)
			tok := e.token(t, "tech", "viewer", "1h")
			tokenExpiry := time.Now().Add(time.Hour)
			c, _ := e.signIn(t, tok)
			raw, _ := e.do(t, http.MethodPost, "/signin", url.Values{"token": {tok}}, e.origin())
			set := raw.Header.Get("Set-Cookie")
			for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
				if !strings.Contains(set, want) {
					t.Errorf("Set-Cookie %q lacks %s", set, want)
				}
			}
			if got := strings.Contains(set, "Secure"); got != tls {
				t.Errorf("Set-Cookie %q: Secure is %v over %s", set, got, name)
			}
			if c.Expires.IsZero() || c.Expires.After(tokenExpiry.Add(time.Second)) {
				t.Errorf("the cookie expires at %v, after the token (%v)", c.Expires, tokenExpiry)
			}
			if strings.Contains(set, tok) || strings.Contains(set, strings.SplitN(tok, ".", 2)[1]) {
				t.Error("the cookie holds the token in the clear")
			}
			resp, body := e.do(t, http.MethodGet, "/site", nil, nil, c)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "tech (viewer)") {
				t.Fatalf("GET /site signed in: %d", resp.StatusCode)
			}
			// Deleting the token ends its sessions.
			req, _ := http.NewRequest(http.MethodDelete, e.n.URL+"/v1/tokens/"+strings.SplitN(tok, ".", 2)[0], nil)
			req.Header.Set("Authorization", "Bearer "+e.n.Token)
			if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusNoContent && r.StatusCode != http.StatusOK {
				t.Fatalf("delete token: %v %v", r, err)
			}
			resp, _ = e.do(t, http.MethodGet, "/site", nil, nil, c)
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("GET /site after the token was deleted: %d, want 303 to sign in", resp.StatusCode)
			}
		})
	}
}

func TestSignOut(t *testing.T) {
	e := start(t, false)
	c, csrf := e.signIn(t, e.token(t, "tech", "viewer", "1h"))
	resp, _ := e.do(t, http.MethodPost, "/signout", url.Values{"csrf": {csrf}}, e.origin(), c)
	cleared := false
	for _, k := range resp.Cookies() {
		cleared = cleared || k.Name == "outpost_session" && k.MaxAge < 0
	}
	if resp.StatusCode != http.StatusSeeOther || !cleared {
		t.Errorf("sign out: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// addMachine stores a machine with a BMC through the proposer.
func addMachine(t *testing.T, e *env, id string) {
	t.Helper()
	m := apptest.Machine(id, 1)
	m.BMC = &store.BMC{Address: "127.0.0.1:1", Username: "admin", Password: "bmc-secret-pw"}
	if _, err := e.n.Site.PutMachine(t.Context(), m, 0); err != nil {
		t.Fatal(err)
	}
}

func TestPowerCycleRecordsWho(t *testing.T) {
	e := start(t, false)
	addMachine(t, e, "m1")
	c, csrf := e.signIn(t, e.token(t, "alice", "operator", "1h"))
	path := "/machines/m1/power"
	// No CSRF token, or another origin: refused, nothing placed.
	for name, req := range map[string]struct {
		form url.Values
		hdr  map[string]string
	}{
		"no csrf":      {url.Values{"action": {"cycle"}, "confirm": {"yes"}}, e.origin()},
		"wrong csrf":   {url.Values{"action": {"cycle"}, "confirm": {"yes"}, "csrf": {"x" + csrf}}, e.origin()},
		"other origin": {url.Values{"action": {"cycle"}, "confirm": {"yes"}, "csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}},
		"no origin":    {url.Values{"action": {"cycle"}, "confirm": {"yes"}, "csrf": {csrf}}, nil},
	} {
		resp, body := e.do(t, http.MethodPost, path, req.form, req.hdr, c)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", name, resp.StatusCode, body)
		}
	}
	if n := orders(t, e); n != 0 {
		t.Fatalf("%d orders after refused requests, want none", n)
	}
	// Unconfirmed: a page naming the machine.
	resp, body := e.do(t, http.MethodPost, path, url.Values{"action": {"cycle"}, "csrf": {csrf}}, e.origin(), c)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "power cycle machine <strong>m1</strong>") {
		t.Fatalf("unconfirmed power cycle: %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.do(t, http.MethodPost, path, url.Values{"action": {"cycle"}, "csrf": {csrf}, "confirm": {"yes"}}, e.origin(), c)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed power cycle: %d %s", resp.StatusCode, body)
	}
	if n := orders(t, e); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	var by []string
	_ = e.n.DB.View(func(tx *store.Tx) error {
		evs, err := tx.EventsSince(0, 1000)
		for _, ev := range evs {
			if ev.MachineID == "m1" && strings.HasPrefix(ev.Kind, "order") {
				by = append(by, ev.By)
			}
		}
		return err
	})
	if len(by) == 0 || by[0] != "alice" {
		t.Errorf("the order's events are by %q, want alice", by)
	}
	// A bad action: a clear error, nothing placed.
	resp, body = e.do(t, http.MethodPost, path, url.Values{"action": {"explode"}, "csrf": {csrf}, "confirm": {"yes"}}, e.origin(), c)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "&#34;explode&#34; is not on, off or cycle") {
		t.Errorf("a bad action: %d %s", resp.StatusCode, body)
	}
	if n := orders(t, e); n != 1 {
		t.Errorf("%d orders after a bad action, want 1", n)
	}
	// The machine page never shows the BMC password.
	_, page := e.do(t, http.MethodGet, "/machines/m1", nil, nil, c)
	if strings.Contains(page, "bmc-secret-pw") || !strings.Contains(page, "password set") {
		t.Error("the machine page shows the BMC password, or not that one is set")
	}
}

func orders(t *testing.T, e *env) int {
	var n int
	_ = e.n.DB.View(func(tx *store.Tx) error { n = store.Count[store.Order](tx); return nil })
	return n
}

// TestRoles sends a viewer's and an operator's session to every route
// of the console's table, with a valid CSRF token and Origin (a forged
// request as good as it gets): a viewer gets 403 on every change.
func TestRoles(t *testing.T) {
	e := start(t, false)
	addMachine(t, e, "m1")
	for _, role := range []string{"viewer", "operator"} {
		c, csrf := e.signIn(t, e.token(t, role+"1", role, "1h"))
		rt := routetest.API{Routes: console.Routes(), Admin: nil,
			Send: func(t *testing.T, rt httpapi.Route, _ string) (int, string) {
				method, path := routetest.Request(rt, map[string]string{"id": "m1"})
				if rt.Method() == "" {
					path = "/no-such-page"
				}
				var form url.Values
				if method == http.MethodPost {
					form = url.Values{"csrf": {csrf}, "action": {"on"}}
				}
				resp, body := e.do(t, method, path, form, e.origin(), c)
				return resp.StatusCode, body
			},
			ReadAlso: func(rt httpapi.Route, code int) bool { return code == http.StatusBadRequest }}
		if role == "viewer" {
			routetest.Viewer(t, rt, "")
		} else {
			routetest.Operator(t, rt, "")
		}
	}
}

// TestViewerSeesNoButtons: a viewer's pages have no control that changes
// anything.
func TestViewerSeesNoButtons(t *testing.T) {
	e := start(t, false)
	addMachine(t, e, "m1")
	c, _ := e.signIn(t, e.token(t, "watcher", "viewer", "1h"))
	for _, p := range []string{"/site", "/machines", "/machines/m1", "/discovered", "/subnets", "/events"} {
		_, body := e.do(t, http.MethodGet, p, nil, nil, c)
		for _, ctl := range []string{"power-on", "power-off", "power-cycle", "next-boot-pxe", "reprovision", "deprovision", "bulk-form", "take-keyboard", "enroll-"} {
			if strings.Contains(body, `data-test="`+ctl) {
				t.Errorf("%s shows %s to a viewer", p, ctl)
			}
		}
	}
	oc, _ := e.signIn(t, e.token(t, "op", "operator", "1h"))
	_, body := e.do(t, http.MethodGet, "/machines/m1", nil, nil, oc)
	if !strings.Contains(body, `data-test="power-cycle"`) || !strings.Contains(body, `data-test="next-boot-pxe"`) ||
		!strings.Contains(body, `data-test="take-keyboard"`) {
		t.Error("an operator's machine page lacks its buttons")
	}
}

// TestEventStreamResumes: the session opens the event stream, which
// resumes after Last-Event-ID with no gap.
func TestEventStreamResumes(t *testing.T) {
	e := start(t, false)
	c, _ := e.signIn(t, e.token(t, "tech", "viewer", "1h"))
	var seqs []uint64
	for i := range 5 {
		seq, err := e.n.Site.RecordEvent(t.Context(), store.Event{Kind: "note", Message: fmt.Sprint("note ", i)})
		if err != nil {
			t.Fatal(err)
		}
		_ = seq
	}
	_ = e.n.DB.View(func(tx *store.Tx) error {
		evs, _ := tx.EventsSince(0, 100)
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
		return nil
	})
	resume := seqs[2]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/v1/events/stream", nil)
	req.Header.Set("Last-Event-ID", fmt.Sprint(resume))
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream with a session: %d", resp.StatusCode)
	}
	// One more event arrives while the stream is open.
	go func() { _, _ = e.n.Site.RecordEvent(context.Background(), store.Event{Kind: "note", Message: "live"}) }()
	want := append(append([]uint64{}, seqs[3:]...), seqs[len(seqs)-1]+1)
	got := readIDs(t, resp.Body, len(want))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resumed after %d: ids %v, want %v", resume, got, want)
	}
	// Without a session, the stream is the API's: a token is needed.
	resp2, _ := e.do(t, http.MethodGet, "/v1/events/stream", nil, nil)
	if resp2.StatusCode != http.StatusUnauthorized {
		t.Errorf("event stream without a session: %d, want 401", resp2.StatusCode)
	}
}

// readIDs reads the ids of the first n events of an event stream.
func readIDs(t *testing.T, r io.Reader, n int) []uint64 {
	t.Helper()
	var ids []uint64
	buf := make([]byte, 4096)
	var acc bytes.Buffer
	for len(ids) < n {
		k, err := r.Read(buf)
		acc.Write(buf[:k])
		if err != nil {
			t.Fatalf("read stream: %v (ids so far %v)", err, ids)
		}
		ids = ids[:0]
		for _, line := range strings.Split(acc.String(), "\n") {
			var id uint64
			if _, err := fmt.Sscanf(line, "id: %d", &id); err == nil {
				ids = append(ids, id)
			}
		}
	}
	return ids[:n]
}

// TestConsoleWebsocketOrigin: a page of another site cannot open the
// serial console with the session.
func TestConsoleWebsocketOrigin(t *testing.T) {
	e := start(t, false)
	addMachine(t, e, "m1")
	c, _ := e.signIn(t, e.token(t, "op", "operator", "1h"))
	hdr := map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example"}
	resp, body := e.do(t, http.MethodGet, "/v1/machines/m1/console?write=true", nil, hdr, c)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "did not come from this console") {
		t.Errorf("a websocket from another origin: %d %s, want 403", resp.StatusCode, body)
	}
}
