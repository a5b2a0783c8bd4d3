package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
)

// Caller is who sent a request: the name and role of its token.
type Caller struct {
	Name string
	Role access.Role
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerOf returns the caller Authenticate put into ctx.
func CallerOf(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// TokenLookup finds the record of a bearer token: its name and grant. ok
// is false for a string that opens nothing (no such id, a wrong secret).
type TokenLookup func(token string) (name string, g access.Grant, ok bool)

// Authenticate answers 401 unless the request carries a bearer token that
// lookup finds and that has not expired at now(), and hands the request
// on with the token's Caller in its context (CallerOf), which Require
// checks.
func Authenticate(realm string, lookup TokenLookup, now func() time.Time, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := Bearer(r)
		name, g, ok := "", access.Grant{}, false
		if tok != "" {
			name, g, ok = lookup(tok)
		}
		switch {
		case !ok:
			Unauthorized(w, realm)
		case g.Expired(now()):
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
			WriteError(w, &errs.Error{Code: CodeUnauthorized, Message: fmt.Sprintf(
				"token %q expired at %s: ask an admin for a new one", name, g.ExpiresAt.UTC().Format(time.RFC3339))})
		default:
			next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), Caller{Name: name, Role: g.Effective()})))
		}
	})
}

// Route is one route of an API and the role its caller needs. Every
// route an API serves to token holders is a Route in one table, so that
// none can be added without naming its role.
type Route struct {
	// Pattern is the route as http.ServeMux reads it: "GET /v1/x/{key}".
	Pattern string
	// Role is the least role that may use the route.
	Role    access.Role
	Handler http.HandlerFunc
}

// Method is the route's method; "" for a pattern that matches any.
func (rt Route) Method() string {
	m, _, ok := strings.Cut(rt.Pattern, " ")
	if !ok {
		return ""
	}
	return m
}

// Register registers every route on mux behind a check of its role
// (Require). A route whose role is no role panics: that is a programming
// error, caught by the first test that builds the API.
func Register(mux *http.ServeMux, routes []Route) {
	for _, rt := range routes {
		if !rt.Role.Valid() {
			panic(fmt.Sprintf("httpapi: route %q names no role", rt.Pattern))
		}
		mux.Handle(rt.Pattern, Require(rt.Role, rt.Handler))
	}
}

// Require answers 403, naming the role needed, unless the caller in the
// request's context (Authenticate) has a role that allows need.
func Require(need access.Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := CallerOf(r.Context())
		if !c.Role.Allows(need) {
			Forbidden(w, c, need)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Forbidden answers 403 to caller c for a route that needs the role need.
func Forbidden(w http.ResponseWriter, c Caller, need access.Role) {
	who := "this request has no token"
	if c.Role != "" {
		who = fmt.Sprintf("token %q has the %s role", c.Name, c.Role)
	}
	WriteError(w, &errs.Error{Code: CodeForbidden, Field: "role",
		Message: fmt.Sprintf("this route needs the %s role; %s", need, who)})
}
