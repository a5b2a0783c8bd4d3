package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
)

// A token is "<id>.<secret>": the id finds the record, the secret's
// SHA-256 must match its hash. The record's grant says what it may do
// (its role) and until when.

// NewToken makes an admin token for name (the first token of a site) and
// the record that stores its hash.
func NewToken(name string) (token string, rec *store.Token) {
	return newToken(name, access.Grant{Role: access.Admin})
}

// newToken makes a token for name with grant g.
func newToken(name string, g access.Grant) (token string, rec *store.Token) {
	id := make([]byte, 4)
	secret := make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	sec := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(sec))
	rec = &store.Token{ID: hex.EncodeToString(id), Name: name, Hash: hex.EncodeToString(sum[:]), Grant: g}
	return rec.ID + "." + sec, rec
}

// checkToken returns the stored record token matches, if any.
func checkToken(tx *store.Tx, token string) (*store.Token, bool) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || id == "" || secret == "" {
		return nil, false
	}
	rec, err := store.Get[store.Token](tx, id)
	if err != nil {
		return nil, false
	}
	want, err := hex.DecodeString(rec.Hash)
	if err != nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(secret))
	return rec, subtle.ConstantTimeCompare(sum[:], want) == 1
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) string { return httpapi.Bearer(r) }

// lookupToken finds a bearer token's record in the store.
func (s *Server) lookupToken(token string) (name string, g access.Grant, ok bool) {
	return TokenLookup(s.db)(token)
}

// TokenLookup finds tokens in db's token records, as the API does: the
// console checks the token its session carries with it on every request.
func TokenLookup(db *store.DB) httpapi.TokenLookup {
	return func(token string) (name string, g access.Grant, ok bool) {
		_ = db.View(func(tx *store.Tx) error {
			var rec *store.Token
			if rec, ok = checkToken(tx, token); ok {
				name, g = rec.Name, rec.Grant
			}
			return nil
		})
		return name, g, ok
	}
}

// requireToken answers 401 unless the request carries a valid token that
// has not expired; the changes the request makes are recorded as its
// token's (site.WithActor).
func (s *Server) requireToken(next http.Handler) http.Handler {
	withActor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := httpapi.CallerOf(r.Context())
		next.ServeHTTP(w, r.WithContext(site.WithActor(r.Context(), c.Name)))
	})
	return httpapi.Authenticate("outpost", s.lookupToken, s.now, withActor)
}
