package console

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

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/seal"
)

const (
	// cookieName is the session cookie's name.
	cookieName = "outpost_session"
	// sessionAD binds a sealed session to its purpose.
	sessionAD = "outpost/console/session"
	// MaxSession is the longest a session lasts; a token that expires
	// sooner ends it sooner.
	MaxSession = 12 * time.Hour
	// csrfField is the form field, and csrfHeader the header (htmx's
	// requests), that carry a session's CSRF token.
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
)

// session is what the sealed cookie holds: the token signed in with
// (checked again on every request, so deleting the token ends the
// session), a random nonce the CSRF token derives from, and the expiry.
type session struct {
	Token   string    `json:"t"`
	Nonce   string    `json:"n"`
	Expires time.Time `json:"e"`
}

// sessionKeys seal sessions and make CSRF tokens, derived from the site
// key so that every node of the site has them without a Raft write.
type sessionKeys struct {
	seal *seal.Key
	csrf []byte
}

func newSessionKeys(site *seal.Key) (sessionKeys, error) {
	k, err := seal.NewKey(site.Derive("outpost/console/session-key"))
	if err != nil {
		return sessionKeys{}, err
	}
	return sessionKeys{seal: k, csrf: site.Derive("outpost/console/csrf-key")}, nil
}

// cookie seals s into the session cookie; Secure when the request came
// over TLS.
func (k sessionKeys) cookie(r *http.Request, s session) *http.Cookie {
	plain, _ := json.Marshal(s)
	return &http.Cookie{
		Name: cookieName, Value: base64.RawURLEncoding.EncodeToString(k.seal.Seal(plain, sessionAD)),
		Path: "/", Expires: s.Expires, MaxAge: int(time.Until(s.Expires).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// open reads the request's session cookie; false if it has none that
// this site sealed or if it has expired.
func (k sessionKeys) open(r *http.Request, now time.Time) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return session{}, false
	}
	plain, err := k.seal.Open(raw, sessionAD)
	if err != nil {
		return session{}, false
	}
	var s session
	if json.Unmarshal(plain, &s) != nil || s.Token == "" || !now.Before(s.Expires) {
		return session{}, false
	}
	return s, true
}

// csrfToken is the session's CSRF token: an HMAC of its nonce.
func (k sessionKeys) csrfToken(s session) string {
	m := hmac.New(sha256.New, k.csrf)
	m.Write([]byte(s.Nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// clearCookie ends the session in the browser.
func clearCookie(r *http.Request) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// newSession starts a session for token, whose grant is g, at now.
func newSession(token string, g access.Grant, now time.Time) session {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	exp := now.Add(MaxSession)
	if !g.ExpiresAt.IsZero() && g.ExpiresAt.Before(exp) {
		exp = g.ExpiresAt
	}
	return session{Token: token, Nonce: hex.EncodeToString(nonce), Expires: exp}
}

// signedIn is the request's session, checked against the token records.
type signedIn struct {
	session
	Caller httpapi.Caller
	CSRF   string
	// LastSeq is the event log's last sequence number when the request
	// came, before its page read anything: the page's live stream starts
	// after it, so no event falls between the page and the stream.
	LastSeq uint64
}

type signedInKey struct{}

// authenticate returns the request's session if it has one whose token
// still opens the site at now.
func (s *Server) authenticate(r *http.Request) (signedIn, bool) {
	now := s.now()
	sess, ok := s.keys.open(r, now)
	if !ok {
		return signedIn{}, false
	}
	name, g, ok := s.lookup(sess.Token)
	if !ok || g.Expired(now) {
		return signedIn{}, false
	}
	return signedIn{session: sess, Caller: httpapi.Caller{Name: name, Role: g.Effective()},
		CSRF: s.keys.csrfToken(sess)}, true
}

// withSession puts the session, its caller and the actor of its changes
// into ctx.
func withSession(ctx context.Context, si signedIn) context.Context {
	ctx = httpapi.WithCaller(ctx, si.Caller)
	ctx = site.WithActor(ctx, si.Caller.Name)
	return context.WithValue(ctx, signedInKey{}, si)
}

func sessionOf(ctx context.Context) signedIn {
	si, _ := ctx.Value(signedInKey{}).(signedIn)
	return si
}

// errCrossOrigin and errCSRF are the refusals of a change that did not
// come from the console's own pages.
var (
	errCrossOrigin = errors.New("the request did not come from this console (its Origin header is missing or names another site)")
	errCSRF        = errors.New("the request carries no valid CSRF token: reload the page and try again")
)

// checkOrigin accepts a request whose Origin is the console's own.
func checkOrigin(r *http.Request) error {
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

// checkChange checks a change (a POST) against cross-site forgery: its
// Origin must be the console's and it must carry the session's CSRF token.
func checkChange(r *http.Request, si signedIn) error {
	if err := checkOrigin(r); err != nil {
		return err
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	if got == "" || !hmac.Equal([]byte(got), []byte(si.CSRF)) {
		return errCSRF
	}
	return nil
}
