package metadata

import (
	"encoding/base64"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// getToken asks for a token from addr.
func (f *fixture) getToken(t *testing.T, from string, ttl int) string {
	t.Helper()
	resp := f.do(t, http.MethodPut, from, "/latest/api/token", map[string]string{tokenTTLHeader: strconv.Itoa(ttl)})
	tok := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT token: status %d: %s", resp.StatusCode, tok)
	}
	if got := resp.Header.Get(tokenTTLHeader); got != strconv.Itoa(ttl) {
		t.Errorf("PUT token: %s %q, want %d", tokenTTLHeader, got, ttl)
	}
	return tok
}

func TestToken(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	tok := f.getToken(t, addr1, 60)
	tok2 := f.getToken(t, addr2, 60)
	withToken := func(from, tok string) (int, string) {
		resp := f.do(t, http.MethodGet, from, "/latest/meta-data/instance-id", map[string]string{tokenHeader: tok})
		return resp.StatusCode, body(t, resp)
	}
	if code, got := withToken(addr1, tok); code != http.StatusOK || got != "m1" {
		t.Errorf("with its token: %d %q, want 200 m1", code, got)
	}
	if code, got := withToken(addr2, tok2); code != http.StatusOK || got != "m2" {
		t.Errorf("m2 with its token: %d %q, want 200 m2", code, got)
	}
	// IMDSv1: no token needed.
	if code, _ := f.get(t, addr1, "/latest/meta-data/instance-id"); code != http.StatusOK {
		t.Errorf("without a token: %d, want 200", code)
	}

	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("token %q is not base64url: %v", tok, err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[5] ^= 1 // a later expiry
	other, err := New(Config{DB: f.db, Key: []byte("another site key, 32 bytes long!"), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]struct{ from, tok string }{
		"another address's token": {addr1, tok2},
		"used from another":       {addr2, tok},
		"altered":                 {addr1, base64.RawURLEncoding.EncodeToString(flipped)},
		"signed with another key": {addr1, other.mintToken(netip.MustParseAddr(addr1), t0.Add(time.Hour))},
		"truncated":               {addr1, tok[:len(tok)-4]},
		"not base64":              {addr1, "!" + tok[1:]},
		"empty":                   {addr1, ""},
	}
	for name, tt := range refused {
		if code, got := withToken(tt.from, tt.tok); code != http.StatusUnauthorized || strings.Contains(got, "m1") || strings.Contains(got, "m2") {
			t.Errorf("%s: %d %q, want 401", name, code, got)
		}
	}
	// Refused on every view, not only EC2's.
	resp := f.do(t, http.MethodGet, addr1, "/nocloud/user-data", map[string]string{tokenHeader: tok2})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("nocloud with another's token: %d, want 401", resp.StatusCode)
	}

	f.now = t0.Add(59 * time.Second)
	if code, _ := withToken(addr1, tok); code != http.StatusOK {
		t.Errorf("just before expiry: %d, want 200", code)
	}
	f.now = t0.Add(60 * time.Second)
	if code, _ := withToken(addr1, tok); code != http.StatusUnauthorized {
		t.Errorf("at expiry: %d, want 401", code)
	}
}

func TestTokenRequest(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	tests := map[string]struct {
		method string
		header map[string]string
		want   int
	}{
		"ttl 1":           {http.MethodPut, map[string]string{tokenTTLHeader: "1"}, http.StatusOK},
		"ttl 21600":       {http.MethodPut, map[string]string{tokenTTLHeader: "21600"}, http.StatusOK},
		"no ttl":          {http.MethodPut, nil, http.StatusBadRequest},
		"ttl 0":           {http.MethodPut, map[string]string{tokenTTLHeader: "0"}, http.StatusBadRequest},
		"ttl 21601":       {http.MethodPut, map[string]string{tokenTTLHeader: "21601"}, http.StatusBadRequest},
		"ttl -5":          {http.MethodPut, map[string]string{tokenTTLHeader: "-5"}, http.StatusBadRequest},
		"ttl not number":  {http.MethodPut, map[string]string{tokenTTLHeader: "60s"}, http.StatusBadRequest},
		"X-Forwarded-For": {http.MethodPut, map[string]string{tokenTTLHeader: "60", "X-Forwarded-For": addr1}, http.StatusForbidden},
		"GET":             {http.MethodGet, map[string]string{tokenTTLHeader: "60"}, http.StatusMethodNotAllowed},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			resp := f.do(t, tt.method, addr1, "/latest/api/token", tt.header)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.want, body(t, resp))
			}
		})
	}
}
