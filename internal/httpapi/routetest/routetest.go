// Package routetest checks an API's route table against the API itself,
// for the tests of both sides: a viewer's and an operator's token are
// sent to every route of the table (so that a route added to it is
// checked too), and what each gets is held against one policy: a viewer
// reads, and nothing else; an operator also writes, but not on the
// admin's routes, which the test names itself.
package routetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// API is an API under test.
type API struct {
	// Routes is its route table.
	Routes []httpapi.Route
	// Admin lists the patterns of the routes only an admin may use.
	Admin []string
	// OperatorReads lists the patterns of the reads a viewer may not use
	// (central's audit: who did what is an operator's to read).
	OperatorReads []string
	// Send sends route rt's request (Request) with token and returns the
	// status and the body of an answer that is not 200.
	Send func(t *testing.T, rt httpapi.Route, token string) (code int, body string)
	// ReadAlso, if set, allows a read route to answer code besides 200
	// and 404.
	ReadAlso func(rt httpapi.Route, code int) bool
}

// Request is the method and path of route rt: its wildcards replaced by
// values (a wildcard not in values names nothing), the table's fallback
// (a pattern without a method) a GET of a path no route has.
func Request(rt httpapi.Route, values map[string]string) (method, path string) {
	method, path = rt.Method(), strings.TrimPrefix(rt.Pattern, rt.Method()+" ")
	if method == "" {
		return http.MethodGet, "/v1/no-such-route"
	}
	for {
		i := strings.Index(path, "{")
		j := strings.Index(path, "}")
		if i < 0 || j < i {
			return method, path
		}
		v, ok := values[path[i+1:j]]
		if !ok {
			v = "nothing-here"
		}
		path = path[:i] + v + path[j+1:]
	}
}

// isRead reports whether a route only reads: a GET, or the fallback.
func isRead(rt httpapi.Route) bool { return rt.Method() == http.MethodGet || rt.Method() == "" }

// Viewer checks that a viewer's token gets 403 naming the role needed on
// every route that writes, on the admin's and on api.OperatorReads, and
// 200 or 404 on every other read.
func Viewer(t *testing.T, api API, token string) {
	t.Helper()
	for _, rt := range api.Routes {
		t.Run(rt.Pattern, func(t *testing.T) {
			code, body := api.Send(t, rt, token)
			switch {
			case !isRead(rt) || slices.Contains(api.Admin, rt.Pattern) || slices.Contains(api.OperatorReads, rt.Pattern):
				checkForbidden(t, code, body, rt.Role)
			case code == http.StatusOK || code == http.StatusNotFound:
			case api.ReadAlso != nil && api.ReadAlso(rt, code):
			default:
				t.Errorf("%d %s, want 200 or 404", code, body)
			}
		})
	}
}

// Operator checks that an operator's token gets 403 naming the admin's
// role on exactly the admin's routes, and is let through on every other;
// and that the admin's routes of the table are exactly api.Admin.
func Operator(t *testing.T, api API, token string) {
	t.Helper()
	var admins []string
	for _, rt := range api.Routes {
		if rt.Role == access.Admin {
			admins = append(admins, rt.Pattern)
		}
		t.Run(rt.Pattern, func(t *testing.T) {
			code, body := api.Send(t, rt, token)
			switch {
			case slices.Contains(api.Admin, rt.Pattern):
				checkForbidden(t, code, body, access.Admin)
			case code == http.StatusForbidden || code == http.StatusUnauthorized:
				t.Errorf("%d %s, want the route to serve an operator", code, body)
			}
		})
	}
	slices.Sort(admins)
	if want := slices.Sorted(slices.Values(api.Admin)); !slices.Equal(admins, want) {
		t.Errorf("the table's admin routes are %q, want %q", admins, want)
	}
}

// checkForbidden checks a 403 whose errs-style body names the role need.
func checkForbidden(t *testing.T, code int, body string, need access.Role) {
	t.Helper()
	var out struct{ Error errs.Error }
	switch {
	case code != http.StatusForbidden:
		t.Errorf("%d %s, want 403", code, body)
	case json.Unmarshal([]byte(body), &out) != nil || out.Error.Code != httpapi.CodeForbidden || out.Error.Field != "role" ||
		!strings.Contains(out.Error.Message, fmt.Sprintf("needs the %s role", need)):
		t.Errorf("403 body %s, want code forbidden naming the %s role", body, need)
	}
}
