package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// TestAuthenticateAndRequire: a token opens the routes its role allows
// until its expiry, with its caller in the request's context; otherwise
// 401 (no token, an unknown one, an expired one) or 403 naming the role.
func TestAuthenticateAndRequire(t *testing.T) {
	records := map[string]struct {
		name string
		g    access.Grant
	}{
		"v": {"tech", access.Grant{Role: access.Viewer}},
		"o": {"ops", access.Grant{Role: access.Operator, ExpiresAt: t0.Add(time.Hour)}},
		"l": {"legacy", access.Grant{}}, // a record of a release before roles
	}
	lookup := func(tok string) (string, access.Grant, bool) {
		r, ok := records[tok]
		return r.name, r.g, ok
	}
	mux := http.NewServeMux()
	var seen Caller
	ok := func(w http.ResponseWriter, r *http.Request) { seen, _ = CallerOf(r.Context()) }
	Register(mux, []Route{
		{Pattern: "GET /read", Role: access.Viewer, Handler: ok},
		{Pattern: "PUT /write", Role: access.Operator, Handler: ok},
		{Pattern: "POST /admin", Role: access.Admin, Handler: ok},
	})
	tests := map[string]struct {
		token, route string
		at           time.Time
		code         int
		caller       Caller
		message      string
	}{
		"viewer reads":          {token: "v", route: "GET /read", at: t0, code: 200, caller: Caller{"tech", access.Viewer}},
		"viewer writes":         {token: "v", route: "PUT /write", at: t0, code: 403, message: `this route needs the operator role; token "tech" has the viewer role`},
		"operator writes":       {token: "o", route: "PUT /write", at: t0, code: 200, caller: Caller{"ops", access.Operator}},
		"operator as admin":     {token: "o", route: "POST /admin", at: t0, code: 403, message: "needs the admin role"},
		"operator just before":  {token: "o", route: "GET /read", at: t0.Add(time.Hour - time.Nanosecond), code: 200, caller: Caller{"ops", access.Operator}},
		"operator at expiry":    {token: "o", route: "GET /read", at: t0.Add(time.Hour), code: 401, message: `token "ops" expired at 2026-12-01T11:00:00Z`},
		"legacy token is admin": {token: "l", route: "POST /admin", at: t0, code: 200, caller: Caller{"legacy", access.Admin}},
		"unknown token":         {token: "x", route: "GET /read", at: t0, code: 401, message: "a valid bearer token is required"},
		"no token":              {route: "GET /read", at: t0, code: 401, message: "a valid bearer token is required"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			seen = Caller{}
			h := Authenticate("test", lookup, func() time.Time { return tc.at }, mux)
			method, path, _ := strings.Cut(tc.route, " ")
			req := httptest.NewRequest(method, path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || seen != tc.caller {
				t.Fatalf("%d, caller %+v; want %d, %+v (body %s)", rec.Code, seen, tc.code, tc.caller, rec.Body)
			}
			if tc.code == 200 {
				return
			}
			var body ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !strings.Contains(body.Error.Message, tc.message) {
				t.Errorf("body %s, want a message with %q", rec.Body, tc.message)
			}
		})
	}
}

// TestRegisterNeedsRole: a route without a role is a programming error
// caught when the API is built.
func TestRegisterNeedsRole(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "GET /x") {
			t.Errorf("recovered %v, want a panic naming the route", r)
		}
	}()
	Register(http.NewServeMux(), []Route{{Pattern: "GET /x", Handler: func(http.ResponseWriter, *http.Request) {}}})
}

func TestTokenRequestGrant(t *testing.T) {
	tests := map[string]struct {
		req   TokenRequest
		want  access.Grant
		field string // of the refusal
	}{
		"viewer":         {req: TokenRequest{Name: "ci", Role: "viewer"}, want: access.Grant{Role: access.Viewer}},
		"for 30 days":    {req: TokenRequest{Name: "ci", Role: "admin", ExpiresIn: "30d"}, want: access.Grant{Role: access.Admin, ExpiresAt: t0.Add(30 * 24 * time.Hour)}},
		"for 90m":        {req: TokenRequest{Name: "ci@x.org", Role: "operator", ExpiresIn: "90m"}, want: access.Grant{Role: access.Operator, ExpiresAt: t0.Add(90 * time.Minute)}},
		"until":          {req: TokenRequest{Name: "ci", Role: "viewer", ExpiresAt: t0.Add(time.Second)}, want: access.Grant{Role: access.Viewer, ExpiresAt: t0.Add(time.Second)}},
		"no role":        {req: TokenRequest{Name: "ci"}, field: "role"},
		"root":           {req: TokenRequest{Name: "ci", Role: "root"}, field: "role"},
		"no name":        {req: TokenRequest{Role: "viewer"}, field: "name"},
		"capitals":       {req: TokenRequest{Name: "CI", Role: "viewer"}, field: "name"},
		"site":           {req: TokenRequest{Name: "site", Role: "viewer"}, field: "name"},
		"a site part":    {req: TokenRequest{Name: "site/dhcp", Role: "viewer"}, field: "name"},
		"now":            {req: TokenRequest{Name: "ci", Role: "viewer", ExpiresAt: t0}, field: "expires_at"},
		"negative":       {req: TokenRequest{Name: "ci", Role: "viewer", ExpiresIn: "-1h"}, field: "expires_in"},
		"a century":      {req: TokenRequest{Name: "ci", Role: "viewer", ExpiresIn: "36501d"}, field: "expires_in"},
		"both":           {req: TokenRequest{Name: "ci", Role: "viewer", ExpiresIn: "1h", ExpiresAt: t0.Add(time.Hour)}, field: "expires_in"},
		"not a lifetime": {req: TokenRequest{Name: "ci", Role: "viewer", ExpiresIn: "tomorrow"}, field: "expires_in"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g, err := tc.req.Grant(t0)
			e, _ := errs.AsError(err)
			switch {
			case tc.field != "" && (e == nil || e.Field != tc.field):
				t.Errorf("%+v, %v; want a refusal of %s", g, err, tc.field)
			case tc.field == "" && (err != nil || g != tc.want):
				t.Errorf("%+v, %v; want %+v", g, err, tc.want)
			}
		})
	}
}
