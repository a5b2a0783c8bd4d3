package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/httpapi/routetest"
	"github.com/outposthq/outpost/internal/raftnode"
)

// adminRoutes are the routes only an admin may use: tokens, sites (a new
// site's credential is handed out), the cluster (joining hands over
// central's key), forgetting a site's events. Every other route that
// changes something is an operator's, every other read a viewer's; a
// route added to the table must fit this policy or be named here.
var adminRoutes = []string{
	"POST /v1/sites", "DELETE /v1/sites/{site}/events",
	"GET /v1/tokens", "GET /v1/tokens/{id}", "POST /v1/tokens", "DELETE /v1/tokens/{id}",
	"POST /v1/cluster/key", "POST /v1/cluster/members", "DELETE /v1/cluster/members/{id}", "POST /v1/cluster/ca/rotate",
}

// routes is the route table of e's API, for package routetest: site s1,
// which the caller creates. A central that is not replicated answers its
// cluster status 409.
func (e *env) routes() routetest.API {
	return routetest.API{Routes: New(Config{}).routes(), Admin: adminRoutes, OperatorReads: []string{"GET /v1/audit"},
		Send: func(t *testing.T, rt httpapi.Route, token string) (int, string) {
			method, path := routetest.Request(rt, map[string]string{"site": "s1", "trace_id": strings.Repeat("0a", 16)})
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, method, e.srv.URL+path, strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return res.StatusCode, "" // perhaps an endless event stream
			}
			raw, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(raw)
		},
		ReadAlso: func(rt httpapi.Route, code int) bool {
			return rt.Pattern == "GET /v1/cluster" && code == http.StatusConflict
		}}
}

// newToken makes a token through the API, as the admin.
func (e *env) newToken(name string, role access.Role) string {
	e.t.Helper()
	var out httpapi.TokenCreated
	if code := e.do("POST", "/v1/tokens", fmt.Sprintf(`{"name":%q,"role":%q}`, name, role), &out); code != http.StatusCreated || out.Role != role {
		e.t.Fatalf("create a %s token: %d %+v", role, code, out)
	}
	return out.Token
}

// TestViewerOnEveryRoute: over every route of the route table, a viewer
// token gets 403 on each that writes and 200 or 404 on each read but the
// admin's; it changed nothing.
func TestViewerOnEveryRoute(t *testing.T) {
	e := newEnv(t)
	e.createSite("s1")
	viewer := e.newToken("tech", access.Viewer)
	before := e.db.AppliedIndex()
	routetest.Viewer(t, e.routes(), viewer)
	if after := e.db.AppliedIndex(); after != before {
		t.Errorf("a viewer's requests moved the applied index from %d to %d", before, after)
	}
}

// TestOperatorOnEveryRoute: an operator token gets 403 on exactly the
// admin's routes, and is let through on every other.
func TestOperatorOnEveryRoute(t *testing.T) {
	e := newEnv(t)
	e.createSite("s1")
	routetest.Operator(t, e.routes(), e.newToken("ops", access.Operator))
}

// TestTokenExpiry: a token opens its routes until its expiry, then gets
// 401 saying it expired.
func TestTokenExpiry(t *testing.T) {
	e := newEnv(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	token, rec := store.NewTokenWith("visitor", access.Grant{Role: access.Viewer, ExpiresAt: now.Add(time.Hour)})
	if err := e.db.CreateToken(rec); err != nil {
		t.Fatal(err)
	}
	h := New(Config{Store: e.db, Now: func() time.Time { return now }}).Handler()
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/sites", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if r := get(); r.Code != http.StatusOK {
		t.Fatalf("before its expiry: %d %s", r.Code, r.Body)
	}
	now = now.Add(time.Hour)
	if r := get(); r.Code != http.StatusUnauthorized || !strings.Contains(r.Body.String(), "expired at 2026-12-01T11:00:00Z") {
		t.Fatalf("at its expiry: %d %s, want 401 saying it expired", r.Code, r.Body)
	}
}

// TestTokensAPI: tokens are made with a role and an expiry, listed with
// them (never a secret nor a hash), and deleted; a bad request names its
// field and makes nothing.
func TestTokensAPI(t *testing.T) {
	e := newEnv(t)
	var made httpapi.TokenCreated
	if code := e.do("POST", "/v1/tokens", `{"name":"ci","role":"operator","expires_in":"30d"}`, &made); code != http.StatusCreated ||
		made.Token == "" || made.ExpiresAt.IsZero() || made.Role != access.Operator {
		t.Fatalf("create: %d %+v", code, made)
	}
	var list struct{ Items []httpapi.TokenView }
	raw := e.raw("GET", "/v1/tokens")
	json.Unmarshal([]byte(raw), &list)
	if len(list.Items) != 2 || strings.Contains(raw, "hash") || strings.Contains(raw, strings.Split(made.Token, ".")[1]) {
		t.Errorf("list: %s", raw)
	}
	for name, body := range map[string]string{
		"role":       `{"name":"x","role":"root"}`,
		"name":       `{"name":"central","role":"viewer"}`,
		"expires_at": `{"name":"x","role":"viewer","expires_at":"2001-01-01T00:00:00Z"}`,
	} {
		var out apiError
		if code := e.do("POST", "/v1/tokens", body, &out); code != http.StatusBadRequest || out.Error.Field != name {
			t.Errorf("%s: %d %+v", body, code, out)
		}
	}
	if code := e.do("DELETE", "/v1/tokens/"+made.ID, "", nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := e.doToken(made.Token, "GET", "/v1/sites", "", nil); code != http.StatusUnauthorized {
		t.Errorf("a deleted token: %d", code)
	}
	if tokens, _ := e.db.Tokens(); len(tokens) != 1 {
		t.Errorf("%d tokens after the refusals and the delete, want the admin's", len(tokens))
	}
}

// raw answers the body of a request with the admin token.
func (e *env) raw(method, path string) string {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestWhoPlacedTheOrder: the revision of an order placed through the API
// names the token that placed it, and so do those of a machine put and
// deleted; a machine's BMC password is not in the revisions shown.
func TestWhoPlacedTheOrder(t *testing.T) {
	e := newEnv(t)
	e.createSite("s1")
	bob := e.newToken("bob", access.Operator)
	steps := []struct{ method, path, body string }{
		{"PUT", "/v1/sites/s1/machines/m1", `{"id":"m1","interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":"10.0.0.1","password":"never-shown-42"}}`},
		{"PUT", "/v1/sites/s1/orders/o1", `{"action":"power_on","machine_id":"m1"}`},
	}
	for _, s := range steps {
		if code := e.doToken(bob, s.method, s.path, s.body, nil); code != http.StatusOK {
			t.Fatalf("%s %s: %d", s.method, s.path, code)
		}
	}
	if code := e.do("DELETE", "/v1/sites/s1/machines/m1", "", nil); code != http.StatusOK {
		t.Fatalf("delete machine: %d", code)
	}
	raw := e.raw("GET", "/v1/sites/s1/revisions")
	var page struct{ Revisions []store.Revision }
	if err := json.Unmarshal([]byte(raw), &page); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range page.Revisions {
		got = append(got, fmt.Sprintf("%d %s/%s by %s", r.Revision, r.Changes[0].Kind, r.Changes[0].Key, r.By))
	}
	want := []string{"1 machine/m1 by bob", "2 order/o1 by bob", "3 machine/m1 by admin"}
	if !slices.Equal(got, want) {
		t.Errorf("revisions %q, want %q", got, want)
	}
	if strings.Contains(raw, "never-shown-42") || strings.Contains(raw, store.SealedPasswordField) {
		t.Errorf("the revisions show a BMC password: %s", raw)
	}
	if code := e.doToken(bob, "GET", "/v1/sites/s1/revisions?since=2", "", &page); code != http.StatusOK || len(page.Revisions) != 1 {
		t.Errorf("revisions since 2: %d %+v", code, page)
	}
}

// TestTokenOfPreviousRelease: a token release b482c18 created (its log's
// JSON command, a record without a role) opens the admin's routes.
func TestTokenOfPreviousRelease(t *testing.T) {
	e := newEnv(t)
	legacy := `{"op":"create_token","time":"2026-12-01T10:00:00Z","token":{"id":"old1","name":"admin-b482c18","hash":"` +
		store.HashSecret("test") + `","created_at":"2026-12-01T10:00:00Z"}}`
	res, err := e.db.Apply([]raftnode.Entry{{Index: e.db.AppliedIndex() + 1, Data: []byte(legacy)}})
	if err != nil || res[0] != nil {
		t.Fatalf("apply the b482c18 command: %v, %v", res, err)
	}
	var out httpapi.TokenCreated
	if code := e.doToken("old1.test", "POST", "/v1/tokens", `{"name":"new","role":"viewer"}`, &out); code != http.StatusCreated {
		t.Fatalf("an admin's route with the b482c18 token: %d", code)
	}
	var list struct{ Items []httpapi.TokenView }
	e.doToken("old1.test", "GET", "/v1/tokens", "", &list)
	for _, v := range list.Items {
		if v.ID == "old1" && v.Role != access.Admin {
			t.Errorf("the b482c18 token shows as %q, want admin", v.Role)
		}
	}
}
