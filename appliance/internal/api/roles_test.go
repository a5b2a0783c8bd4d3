package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/httpapi/routetest"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/testdir"
	"github.com/outposthq/outpost/internal/testwait"
)

// adminRoutes are the routes only an admin may use: tokens, cluster
// membership (joining hands over the site key), settings. Every other
// route that changes something is an operator's, and every other read a
// viewer's. A route added to the table must fit this policy, or be added
// here by someone who decided it is an admin's.
var adminRoutes = []string{
	"GET /v1/tokens", "GET /v1/tokens/{key}", "POST /v1/tokens", "DELETE /v1/tokens/{key}",
	"PUT /v1/settings",
	"POST /v1/cluster/join", "DELETE /v1/cluster/members/{id}", "POST /v1/cluster/ca/rotate",
}

// routes is the route table of n's API, for package routetest.
func routes(n *apptest.Node) routetest.API {
	return routetest.API{Routes: api.Routes(), Admin: adminRoutes,
		Send: func(t *testing.T, rt httpapi.Route, token string) (int, string) {
			method, path := routetest.Request(rt, nil)
			req, err := http.NewRequestWithContext(t.Context(), method, n.URL+path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			return send(t, req)
		}}
}

// send sends req and returns its status and, unless it is 200 (which may
// be an event stream that never ends), its body.
func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// createToken makes a token with role through the API, as the admin.
func createToken(t *testing.T, n *apptest.Node, name string, role access.Role) string {
	t.Helper()
	code, body := call(t, n, "POST", "/v1/tokens", n.Token, fmt.Sprintf(`{"name":%q,"role":%q}`, name, role))
	var out httpapi.TokenCreated
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &out) != nil || out.Role != role {
		t.Fatalf("create a %s token: %d %s", role, code, body)
	}
	return out.Token
}

// TestViewerOnEveryRoute: over every route of the route table, a viewer
// token gets 403 on each that writes and 200 or 404 on each read but the
// admin's; nothing it asked changed anything.
func TestViewerOnEveryRoute(t *testing.T) {
	n := apptest.Start(t)
	viewer := createToken(t, n, "tech-laptop", access.Viewer)
	// apptest.Start returns a ready leader: the applied index moves only
	// with the test's writes.
	before := n.DB.AppliedIndex()
	routetest.Viewer(t, routes(n), viewer)
	if after := n.DB.AppliedIndex(); after != before {
		t.Errorf("a viewer's requests moved the applied index from %d to %d", before, after)
	}
}

// TestOperatorOnEveryRoute: an operator token gets 403 on exactly the
// admin's routes, and is let through on every other.
func TestOperatorOnEveryRoute(t *testing.T) {
	n := apptest.Start(t)
	routetest.Operator(t, routes(n), createToken(t, n, "ops", access.Operator))
}

// TestExpiredToken: a token stops opening anything once its expiry has
// passed, with a 401 that says so.
func TestExpiredToken(t *testing.T) {
	n := apptest.Start(t)
	code, body := call(t, n, "POST", "/v1/tokens", n.Token, `{"name":"visitor","role":"viewer","expires_in":"1s"}`)
	var tok httpapi.TokenCreated
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &tok) != nil || tok.ExpiresAt.IsZero() {
		t.Fatalf("create a token expiring in 1s: %d %s", code, body)
	}
	testwait.For(t, "the token to stop opening routes", 30*time.Second, func() bool {
		code, body = call(t, n, "GET", "/v1/machines", tok.Token, "")
		return code != http.StatusOK
	})
	if code != http.StatusUnauthorized || !strings.Contains(decodeErr(t, body).Error.Message, "expired") {
		t.Fatalf("after its expiry: %d %s, want 401 saying it expired", code, body)
	}
	if now := time.Now(); now.Before(tok.ExpiresAt) {
		t.Errorf("refused at %s, before its expiry %s", now, tok.ExpiresAt)
	}
}

// TestTokenRequestRefused: a token request without a role, with an
// unknown one, a name of the system's or an expiry in the past is refused
// naming the field, and creates nothing.
func TestTokenRequestRefused(t *testing.T) {
	n := apptest.Start(t)
	tests := map[string]struct{ body, field string }{
		"no role":       {`{"name":"ci"}`, "role"},
		"unknown role":  {`{"name":"ci","role":"root"}`, "role"},
		"no name":       {`{"role":"viewer"}`, "name"},
		"system name":   {`{"name":"central","role":"admin"}`, "name"},
		"slash in name": {`{"name":"site/dhcp","role":"admin"}`, "name"},
		"past expiry":   {`{"name":"ci","role":"viewer","expires_at":"2001-01-01T00:00:00Z"}`, "expires_at"},
		"bad lifetime":  {`{"name":"ci","role":"viewer","expires_in":"soon"}`, "expires_in"},
		"both expiries": {`{"name":"ci","role":"viewer","expires_in":"1h","expires_at":"2099-01-01T00:00:00Z"}`, "expires_in"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := n.DB.AppliedIndex()
			code, body := call(t, n, "POST", "/v1/tokens", n.Token, tc.body)
			if code != http.StatusBadRequest || decodeErr(t, body).Error.Field != tc.field {
				t.Errorf("%d %s, want 400 naming %s", code, body, tc.field)
			}
			if after := n.DB.AppliedIndex(); after != before {
				t.Errorf("applied index moved from %d to %d", before, after)
			}
		})
	}
}

// eventsSince returns the site's events after seq.
func eventsSince(t *testing.T, n *apptest.Node, seq uint64) []*store.Event {
	t.Helper()
	var events []*store.Event
	if err := n.DB.View(func(tx *store.Tx) (err error) { events, err = tx.EventsSince(seq, 1000); return err }); err != nil {
		t.Fatal(err)
	}
	return events
}

// TestWhoPressedTheButton: the events of an order placed through the API
// name the token that placed it; a note cannot claim another author;
// tokens made and deleted are on the timeline with the admin who did it.
func TestWhoPressedTheButton(t *testing.T) {
	n := apptest.Start(t)
	start := lastSeq(t, n)
	ops := createToken(t, n, "alice", access.Operator)
	if code, body := call(t, n, "PUT", "/v1/machines/m1", ops, `{"interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":"127.0.0.1:9"}}`); code != http.StatusCreated {
		t.Fatalf("put machine: %d %s", code, body)
	}
	placed := lastSeq(t, n)
	if code, body := call(t, n, "PUT", "/v1/orders/o1", ops, `{"action":"power_on","machine_id":"m1"}`); code != http.StatusCreated {
		t.Fatalf("place order: %d %s", code, body)
	}
	var kinds []string
	for _, e := range eventsSince(t, n, placed) {
		kinds = append(kinds, e.Kind+" by "+e.By)
	}
	if diff := cmp.Diff([]string{"bmc.job.created by alice", "order.created by alice"}, kinds); diff != "" {
		t.Errorf("the order's events (-want +got):\n%s", diff)
	}

	code, body := call(t, n, "POST", "/v1/events", ops, `{"kind":"note","message":"hi","by":"bob"}`)
	if code != http.StatusBadRequest || decodeErr(t, body).Error.Field != "by" {
		t.Errorf("a note claiming another author: %d %s, want 400 naming by", code, body)
	}

	var tokens struct{ Items []httpapi.TokenView }
	_, body = call(t, n, "GET", "/v1/tokens", n.Token, "")
	json.Unmarshal([]byte(body), &tokens)
	var alice string
	for _, v := range tokens.Items {
		if v.Name == "alice" {
			alice = v.ID
		}
	}
	if code, _ := call(t, n, "DELETE", "/v1/tokens/"+alice, n.Token, ""); code != http.StatusNoContent {
		t.Fatalf("delete alice's token: %d", code)
	}
	var audit []string
	for _, e := range eventsSince(t, n, start) {
		if strings.HasPrefix(e.Kind, "token.") {
			audit = append(audit, fmt.Sprintf("%s %s %s by %s", e.Kind, e.Fields["token"], e.Fields["role"], e.By))
		}
	}
	want := []string{"token.created " + alice + " operator by admin", "token.deleted " + alice + "  by admin"}
	if diff := cmp.Diff(want, audit); diff != "" {
		t.Errorf("the tokens' events (-want +got):\n%s", diff)
	}
	if strings.Contains(fmt.Sprint(eventsSince(t, n, 0)), strings.Split(ops, ".")[1]) {
		t.Error("an event holds a token's secret")
	}
}

// TestTokenOfPreviousRelease starts a node on the data directory release
// b482c18 wrote (the fixture of package cluster), which replays that
// release's log: its token, which has no role, is an admin's, and opens
// the admin's routes; the token that release deleted opens nothing.
func TestTokenOfPreviousRelease(t *testing.T) {
	dir := t.TempDir()
	testdir.Untar(t, "../cluster/testdata/datadir-b482c18/datadir.tar.gz", dir)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	key, err := seal.Load(filepath.Join(dir, "site.key"))
	if err != nil {
		t.Fatal(err)
	}
	node := apptest.OpenNode(t, key, cluster.Config{ID: "node1", Dir: filepath.Join(dir, "raft"),
		BindAddr: apptest.FreeAddr(t), APIURL: url, Log: log}, db)
	srv.Config.Handler = api.New(api.Config{Site: cluster.NewSite(node, site.ProposerConfig{}).Proposer, Store: db,
		Cluster: node, Log: log}).Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	testwait.For(t, "the node to lead its own cluster", 30*time.Second, node.IsReadyLeader)
	n := &apptest.Node{URL: url, DB: db}
	// The fixture's tokens: "admin" and "gone" (deleted), both of secret
	// "test" (make_fixture_test.go.txt).
	var tokens struct{ Items []httpapi.TokenView }
	code, body := call(t, n, "GET", "/v1/tokens", "admin.test", "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &tokens) != nil {
		t.Fatalf("GET /v1/tokens with the b482c18 token: %d %s", code, body)
	}
	if len(tokens.Items) != 1 || tokens.Items[0].Name != "admin" || tokens.Items[0].Role != access.Admin {
		t.Errorf("tokens %s, want the one admin token", body)
	}
	if created := createToken(t, &apptest.Node{URL: url, DB: db, Token: "admin.test"}, "new", access.Viewer); created == "" {
		t.Error("no token made with the b482c18 token")
	}
	if code, _ := call(t, n, "GET", "/v1/machines", "gone.test", ""); code != http.StatusUnauthorized {
		t.Errorf("the token b482c18 deleted: %d, want 401", code)
	}
}
