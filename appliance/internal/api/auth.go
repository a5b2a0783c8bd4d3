package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/httpapi"
)

// A token is "<id>.<secret>": the id finds the record, the secret's
// SHA-256 must match its hash.

// NewToken makes a token for name and the record that stores its hash.
func NewToken(name string) (token string, rec *store.Token) {
	id := make([]byte, 4)
	secret := make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	sec := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(sec))
	rec = &store.Token{ID: hex.EncodeToString(id), Name: name, Hash: hex.EncodeToString(sum[:])}
	return rec.ID + "." + sec, rec
}

// checkToken reports whether token matches a stored token record.
func checkToken(tx *store.Tx, token string) bool {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || id == "" || secret == "" {
		return false
	}
	rec, err := store.Get[store.Token](tx, id)
	if err != nil {
		return false
	}
	want, err := hex.DecodeString(rec.Hash)
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], want) == 1
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) string { return httpapi.Bearer(r) }

// requireToken answers 401 unless the request carries a valid token.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		ok := false
		if tok != "" {
			_ = s.db.View(func(tx *store.Tx) error { ok = checkToken(tx, tok); return nil })
		}
		if !ok {
			httpapi.Unauthorized(w, "outpost")
			return
		}
		next.ServeHTTP(w, r)
	})
}
