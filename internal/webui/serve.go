package webui

import (
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/outposthq/outpost/internal/access"
)

//go:embed assets templates
var files embed.FS

// Fail answers a request with an error page saying msg.
type Fail func(w http.ResponseWriter, r *http.Request, status int, msg string)

// SignInForm is what the sign-in page shows: where to go once signed
// in, and why the last attempt failed.
type SignInForm struct {
	Next  string
	Error string
}

// Config is what Handler assembles.
type Config struct {
	Auth *Auth
	// Home is the page a browser goes to once signed in ("/site").
	Home string
	// SignInPage renders the sign-in page with form, with status.
	SignInPage func(w http.ResponseWriter, r *http.Request, status int, form SignInForm)
	Fail       Fail
	// Pages serves every page and action behind the session (a route
	// table registered with httpapi.Register: the role is checked on
	// every request). The request's context holds the session
	// (SessionOf) and its caller.
	Pages http.Handler
	// Assets are the server's own assets, served under /assets/ before
	// the shared ones (outpost.css, outpost.js, vendor/htmx.min.js).
	Assets fs.FS
	// API is the JSON API, served under /v1/ and at the patterns of
	// APIPaths ("GET /healthz": its probes, and what else it answers
	// for itself). A request with a session cookie
	// and no Authorization header reaches an API route Bridged allows
	// with the session's token; such a request that is not a GET must
	// pass CheckChange, and a websocket's Origin must be the server's.
	API      http.Handler
	APIPaths []string
	Bridged  func(r *http.Request) bool
	Log      *slog.Logger
}

// Handler serves a console: the sign-in page at /, the assets, the API
// under /v1/ and the pages behind a session, with SecurityHeaders.
func Handler(cfg Config) http.Handler {
	root := http.NewServeMux()
	root.HandleFunc("GET /{$}", cfg.signInPage)
	root.HandleFunc("POST /signin", cfg.signIn)
	// Signing out changes nothing but the browser's cookie: any session
	// may, with its CSRF token.
	root.Handle("POST /signout", cfg.Guard(http.HandlerFunc(signOut)))
	root.Handle("GET /assets/", http.StripPrefix("/assets/", assets(cfg.Assets)))
	if cfg.API != nil {
		root.Handle("/v1/", cfg.bridge(cfg.API))
		for _, p := range cfg.APIPaths {
			root.Handle(p, cfg.API)
		}
	}
	root.Handle("/", cfg.Guard(cfg.Pages))
	return SecurityHeaders(root)
}

// Guard sends a browser without a valid session to the sign-in page (a
// change gets 401), refuses a change that did not come from the
// server's own pages (403), and hands the request on with its session.
func (cfg Config) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		si, ok := cfg.Auth.Authenticate(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			cfg.Fail(w, r, http.StatusUnauthorized, "you are not signed in, or your session ended: sign in again")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := si.CheckChange(r); err != nil {
				cfg.Fail(w, r, http.StatusForbidden, err.Error())
				return
			}
		}
		if cfg.Auth.Version != nil {
			si.Version = cfg.Auth.Version()
		}
		next.ServeHTTP(w, r.WithContext(WithSession(r.Context(), si)))
	})
}

// bridge serves the API, with the session's token on the routes
// Bridged allows a session (see Config.API).
func (cfg Config) bridge(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && cfg.Bridged != nil && cfg.Bridged(r) {
			if si, ok := cfg.Auth.Authenticate(r); ok {
				var err error
				switch {
				case isWebsocket(r):
					err = CheckOrigin(r)
				case r.Method != http.MethodGet && r.Method != http.MethodHead:
					err = si.CheckChange(r)
				}
				if err != nil {
					cfg.Fail(w, r, http.StatusForbidden, err.Error())
					return
				}
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer "+si.Token)
			}
		}
		api.ServeHTTP(w, r)
	})
}

func isWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// signInPage serves the sign-in form; a browser already signed in goes
// home.
func (cfg Config) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := cfg.Auth.Authenticate(r); ok {
		http.Redirect(w, r, cfg.Home, http.StatusSeeOther)
		return
	}
	cfg.SignInPage(w, r, http.StatusOK, SignInForm{Next: r.URL.Query().Get("next")})
}

// errSignIn are the sign-in form's refusals.
var (
	errUnknownToken = errors.New("that token opens nothing here: check it, or ask an admin for one")
	errExpiredToken = errors.New("that token has expired: ask an admin for a new one")
)

// signIn turns a token into a session cookie. The token is the only
// thing it is given; its Origin must be the server's.
func (cfg Config) signIn(w http.ResponseWriter, r *http.Request) {
	next := SafeNext(r.PostFormValue("next"), cfg.Home)
	if err := CheckOrigin(r); err != nil {
		cfg.Fail(w, r, http.StatusForbidden, err.Error())
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	name, g, ok := "", access.Grant{}, false
	if token != "" {
		name, g, ok = cfg.Auth.Lookup(token)
	}
	now := cfg.Auth.now()
	switch {
	case !ok:
		cfg.SignInPage(w, r, http.StatusUnauthorized, SignInForm{Next: next, Error: errUnknownToken.Error()})
		return
	case g.Expired(now):
		cfg.SignInPage(w, r, http.StatusUnauthorized, SignInForm{Next: next, Error: errExpiredToken.Error()})
		return
	}
	http.SetCookie(w, cfg.Auth.Keys.cookie(r, newSession(token, g, now)))
	if cfg.Log != nil {
		cfg.Log.Info("console sign-in", "token", name, "role", g.Effective(), "remote", r.RemoteAddr)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// SafeNext is where to go after signing in: a path of this server, or
// home.
func SafeNext(next, home string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/v1/") || next == "/" {
		return home
	}
	return next
}

// signOut ends the session in this browser.
func signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, clearCookie(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// SecurityHeaders allows the pages nothing but the server itself:
// scripts, styles, images and connections from its own origin only
// (inline styles too: xterm.js writes its theme into a style element;
// no inline script runs). The API's answers under /v1/ are left alone.
func SecurityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			h := w.Header()
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "same-origin")
		}
		next.ServeHTTP(w, r)
	})
}

// assets serves own's files, then the shared ones, and lets a browser
// keep them for an hour: they change only with the binary.
func assets(own fs.FS) http.Handler {
	shared, _ := fs.Sub(files, "assets")
	sharedH := http.FileServerFS(shared)
	var ownH http.Handler
	if own != nil {
		ownH = http.FileServerFS(own)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=3600")
		if own != nil {
			if fi, err := fs.Stat(own, strings.TrimPrefix(r.URL.Path, "/")); err == nil && !fi.IsDir() {
				ownH.ServeHTTP(w, r)
				return
			}
		}
		sharedH.ServeHTTP(w, r)
	})
}

// Files are the shared assets (assets/outpost.css, assets/outpost.js,
// assets/vendor/), for tests.
func Files() fs.FS { return files }
