package metadata

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzHandler sends the metadata service requests of any method, path,
// IMDSv2 headers and source address, and checks what no answer may do:
// fail (5xx), show a BMC secret, answer about a machine to any address
// but its own, answer with a token that is not the valid one of the source
// address, or give a token to a proxied request.
func FuzzHandler(f *testing.F) {
	fx := newFixture(f)
	tokens := map[netip.Addr][]byte{} // the valid token of each machine's address
	for _, a := range []string{addr1, addr2, addr3} {
		rec, _ := fuzzServe(fx.handler, "PUT", "/latest/api/token", a+":40000", "", false, "21600", false)
		tok := rec.Body.String()
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			f.Fatalf("token of %s: %q: %v", a, tok, err)
		}
		tokens[netip.MustParseAddr(a)] = raw
	}
	tok1 := base64.RawURLEncoding.EncodeToString(tokens[netip.MustParseAddr(addr1)])
	for _, seed := range []struct {
		method, target, remote, token string
		hasToken                      bool
		ttl                           string
		xff                           bool
	}{
		{"GET", "/latest/meta-data/instance-id", addr1 + ":40000", "", false, "", false},
		{"GET", "/latest/user-data", addr2 + ":1", tok1, true, "", false},
		{"GET", "/latest/meta-data/public-keys/0/openssh-key", addr1 + ":2", tok1, true, "", false},
		{"PUT", "/latest/api/token", addr1 + ":3", "", false, "60", false},
		{"PUT", "/latest/api/token", addr1 + ":3", "", false, "60", true},
		{"GET", "/nocloud/user-data", "[::ffff:" + addr1 + "]:4", "", false, "", false},
		{"GET", "/metadata/v1.json", addrStranger + ":5", "", false, "", false},
		{"GET", "/2009-04-04/meta-data/network/interfaces/macs/52:54:00:12:34:01/local-ipv4s", addr1 + ":6", "", false, "", false},
		{"HEAD", "/latest/dynamic/instance-identity/document", addr3 + ":7", "", false, "", false},
		{"GET", "/latest/../latest/meta-data/%2e%2e/user-data?x=1", addr2 + ":8", "", false, "", false},
		{"GET", "/nocloud/network-config", "not an address", "", false, "", false},
		{"GET", "/latest/meta-data/", addrExpired + ":9", tok1[:20], true, "", false},
	} {
		f.Add(seed.method, seed.target, seed.remote, seed.token, seed.hasToken, seed.ttl, seed.xff)
	}
	f.Fuzz(func(t *testing.T, method, target, remote, token string, hasToken bool, ttl string, xff bool) {
		rec, req := fuzzServe(fx.handler, method, target, remote, token, hasToken, ttl, xff)
		if rec == nil {
			return // not a request an HTTP server would pass on
		}
		body := rec.Body.String()
		if rec.Code >= 500 {
			t.Fatalf("%s %q from %q: %d %q", method, target, remote, rec.Code, body)
		}
		for _, secret := range []string{bmcPassword, bmcUser, bmcAddr, string(bmcSealed), base64.StdEncoding.EncodeToString(bmcSealed)} {
			if strings.Contains(body, secret) {
				t.Fatalf("%s %q from %q shows a BMC secret: %q", method, target, remote, body)
			}
		}
		if rec.Code != http.StatusOK {
			return
		}
		ap, err := netip.ParseAddrPort(remote)
		if err != nil {
			t.Fatalf("%s %q from %q, which is no address: 200 %q", method, target, remote, body)
		}
		src := ap.Addr().Unmap()
		checkFuzzAnswer(t, req, src, body, tokens)
	})
}

// checkFuzzAnswer checks a 200 answer to req, from src.
func checkFuzzAnswer(t *testing.T, req *http.Request, src netip.Addr, body string, tokens map[netip.Addr][]byte) {
	t.Helper()
	method, target := req.Method, req.RequestURI
	if method == http.MethodPut {
		if _, ok := req.Header["X-Forwarded-For"]; ok {
			t.Fatalf("PUT %q with X-Forwarded-For got a token", target)
		}
		return // a token for the source address, whoever it is
	}
	valid, known := tokens[src]
	if !known {
		t.Fatalf("%s %q from %s, which no machine has: 200 %q", method, target, src, body)
	}
	if tok, ok := req.Header[tokenHeader]; ok {
		if raw, err := base64.RawURLEncoding.DecodeString(tok[0]); err != nil || !bytes.Equal(raw, valid) {
			t.Fatalf("%s %q from %s with token %q, not its own: 200 %q", method, target, src, tok[0], body)
		}
	}
	for addr, marks := range map[string][]string{
		addr1: {"echo m1", "alice@example.net", "web-1", "52:54:00:12:34:01"},
		addr2: {"echo m2", "carol", "db-1", "52:54:00:12:34:02"},
	} {
		if src.String() == addr {
			continue
		}
		for _, m := range marks {
			if strings.Contains(body, m) {
				t.Fatalf("%s %q from %s shows %q, of the machine at %s: %q", method, target, src, m, addr, body)
			}
		}
	}
}

// fuzzServe parses a request as an HTTP server would and serves it from
// remote; nil if the server would refuse it before any handler.
func fuzzServe(h http.Handler, method, target, remote, token string, hasToken bool, ttl string, xff bool) (*httptest.ResponseRecorder, *http.Request) {
	var raw strings.Builder
	raw.WriteString(method + " " + target + " HTTP/1.1\r\nHost: 169.254.169.254\r\n")
	if hasToken {
		raw.WriteString(tokenHeader + ": " + token + "\r\n")
	}
	if ttl != "" {
		raw.WriteString(tokenTTLHeader + ": " + ttl + "\r\n")
	}
	if xff {
		raw.WriteString("X-Forwarded-For: 203.0.113.9\r\n")
	}
	raw.WriteString("\r\n")
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw.String())))
	if err != nil || req.Method != method {
		return nil, nil
	}
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, req
}
