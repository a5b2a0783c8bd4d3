package metadata

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// IMDSv2 headers, in canonical form.
const (
	tokenHeader    = "X-Aws-Ec2-Metadata-Token"
	tokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	maxTokenTTL    = 21600 // seconds, as Amazon's
)

// A token is base64url (unpadded) of
//
//	version (1 byte) | expiry, Unix seconds (8, big-endian) |
//	source address (16, IPv4 mapped) | HMAC-SHA256 of the above (32)
const (
	tokenVersion = 1
	tokenBody    = 1 + 8 + 16
	tokenLen     = tokenBody + sha256.Size
)

// putToken answers PUT /latest/api/token with a token for the source
// address.
func (s *Server) putToken(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.Header["X-Forwarded-For"]; ok {
		http.Error(w, "token requests through a proxy are refused", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(tokenTTLHeader))
	if err != nil || ttl < 1 || ttl > maxTokenTTL {
		http.Error(w, tokenTTLHeader+" must be a number of seconds from 1 to 21600", http.StatusBadRequest)
		return
	}
	addr, err := sourceAddr(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tok := s.mintToken(addr, s.now().Add(time.Duration(ttl)*time.Second))
	w.Header().Set(tokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Cache-Control", "no-store")
	writeText(w, tok)
}

// mintToken returns a token for addr that expires at exp.
func (s *Server) mintToken(addr netip.Addr, exp time.Time) string {
	b := make([]byte, tokenBody, tokenLen)
	b[0] = tokenVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(exp.Unix()))
	a16 := addr.As16()
	copy(b[9:], a16[:])
	return base64.RawURLEncoding.EncodeToString(s.sign(b))
}

// sign appends the HMAC of b to b.
func (s *Server) sign(b []byte) []byte {
	mac := hmac.New(sha256.New, s.tokenKey)
	mac.Write(b)
	return mac.Sum(b)
}

// checkToken returns why tok is not a valid, unexpired token for addr.
func (s *Server) checkToken(tok string, addr netip.Addr) error {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != tokenLen || b[0] != tokenVersion {
		return errors.New("malformed token")
	}
	if !hmac.Equal(s.sign(b[:tokenBody:tokenBody]), b) {
		return errors.New("bad signature")
	}
	if netip.AddrFrom16([16]byte(b[9:tokenBody])).Unmap() != addr {
		return errors.New("token is for another address")
	}
	now := s.steps.JudgeAt(s.now(), maxTokenTTL*time.Second)
	if exp := time.Unix(int64(binary.BigEndian.Uint64(b[1:9])), 0); !now.Before(exp) {
		return errors.New("token expired")
	}
	return nil
}
