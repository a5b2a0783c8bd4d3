package webui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/seal"
)

const (
	// CookieName is the session cookie's name.
	CookieName = "outpost_session"
	// MaxSession is the longest a session lasts; a token that expires
	// sooner ends it sooner.
	MaxSession = 12 * time.Hour
	// CSRFField is the form field, and CSRFHeader the header (htmx's
	// requests, the upload script's), that carry a session's CSRF token.
	CSRFField  = "csrf"
	CSRFHeader = "X-CSRF-Token"
)

// Session is what the sealed cookie holds: the token signed in with
// (checked again on every request, so deleting the token ends the
// session), a random nonce the CSRF token derives from, and the expiry.
type Session struct {
	Token   string    `json:"t"`
	Nonce   string    `json:"n"`
	Expires time.Time `json:"e"`
}

// Keys seal sessions and make CSRF tokens. They are derived from a key
// the server already has (the site key, central's key), so that every
// node of a cluster has them without a Raft write.
type Keys struct {
	seal *seal.Key
	csrf []byte
	ad   string
}

// NewKeys derives the keys of purpose ("outpost/console") with derive,
// a seal.Key's Derive.
func NewKeys(derive func(purpose string) []byte, purpose string) (*Keys, error) {
	k, err := seal.NewKey(derive(purpose + "/session-key"))
	if err != nil {
		return nil, err
	}
	return &Keys{seal: k, csrf: derive(purpose + "/csrf-key"), ad: purpose + "/session"}, nil
}

// cookie seals s into the session cookie; Secure when the request came
// over TLS.
func (k *Keys) cookie(r *http.Request, s Session) *http.Cookie {
	plain, _ := json.Marshal(s)
	return &http.Cookie{
		Name: CookieName, Value: base64.RawURLEncoding.EncodeToString(k.seal.Seal(plain, k.ad)),
		Path: "/", Expires: s.Expires, MaxAge: int(time.Until(s.Expires).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// open reads the request's session cookie; false if it has none that
// these keys sealed or if it has expired.
func (k *Keys) open(r *http.Request, now time.Time) (Session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return Session{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return Session{}, false
	}
	plain, err := k.seal.Open(raw, k.ad)
	if err != nil {
		return Session{}, false
	}
	var s Session
	if json.Unmarshal(plain, &s) != nil || s.Token == "" || !now.Before(s.Expires) {
		return Session{}, false
	}
	return s, true
}

// csrfToken is the session's CSRF token: an HMAC of its nonce.
func (k *Keys) csrfToken(s Session) string {
	m := hmac.New(sha256.New, k.csrf)
	m.Write([]byte(s.Nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// clearCookie ends the session in the browser.
func clearCookie(r *http.Request) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// newSession starts a session for token, whose grant is g, at now.
func newSession(token string, g access.Grant, now time.Time) Session {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	exp := now.Add(MaxSession)
	if !g.ExpiresAt.IsZero() && g.ExpiresAt.Before(exp) {
		exp = g.ExpiresAt
	}
	return Session{Token: token, Nonce: hex.EncodeToString(nonce), Expires: exp}
}

// SignedIn is a request's session, checked against the token records.
type SignedIn struct {
	Session
	Caller httpapi.Caller
	CSRF   string
	// Version is where the server's change stream stood when the
	// request came, before its page read anything (Auth.Version): the
	// page's live stream starts after it, so no change falls between
	// the page and the stream.
	Version uint64
}

// Auth checks sessions: their cookie, and their token on every request.
type Auth struct {
	Keys *Keys
	// Lookup checks the token a session carries, on every request.
	Lookup httpapi.TokenLookup
	// Now is the clock sessions expire by; nil means time.Now.
	Now func() time.Time
	// Version, if set, is read into SignedIn.Version on every request.
	Version func() uint64
}

func (a *Auth) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// Authenticate returns the request's session if it has one whose token
// still opens the server at now.
func (a *Auth) Authenticate(r *http.Request) (SignedIn, bool) {
	now := a.now()
	sess, ok := a.Keys.open(r, now)
	if !ok {
		return SignedIn{}, false
	}
	name, g, ok := a.Lookup(sess.Token)
	if !ok || g.Expired(now) {
		return SignedIn{}, false
	}
	return SignedIn{Session: sess, Caller: httpapi.Caller{Name: name, Role: g.Effective()},
		CSRF: a.Keys.csrfToken(sess)}, true
}

type signedInKey struct{}

// WithSession puts the session and its caller into ctx.
func WithSession(ctx context.Context, si SignedIn) context.Context {
	ctx = httpapi.WithCaller(ctx, si.Caller)
	return context.WithValue(ctx, signedInKey{}, si)
}

// SessionOf is the session WithSession put into ctx (the zero value,
// not signed in, if none).
func SessionOf(ctx context.Context) SignedIn {
	si, _ := ctx.Value(signedInKey{}).(SignedIn)
	return si
}

// errCrossOrigin and errCSRF are the refusals of a change that did not
// come from the server's own pages.
var (
	errCrossOrigin = errors.New("the request did not come from this console (its Origin header is missing or names another site)")
	errCSRF        = errors.New("the request carries no valid CSRF token: reload the page and try again")
)

// CheckOrigin accepts a request whose Origin is the server's own.
func CheckOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return errCrossOrigin
	}
	u, err := url.Parse(o)
	if err != nil {
		return errCrossOrigin
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) {
		return errCrossOrigin
	}
	return nil
}

// CheckChange checks a change (a POST) against cross-site forgery: its
// Origin must be the server's and it must carry the session's CSRF
// token, in the X-CSRF-Token header or the csrf form field.
func (si SignedIn) CheckChange(r *http.Request) error {
	if err := CheckOrigin(r); err != nil {
		return err
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	if got == "" || !hmac.Equal([]byte(got), []byte(si.CSRF)) {
		return errCSRF
	}
	return nil
}
