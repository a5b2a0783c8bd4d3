package metadata

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestIsolation: each machine sees only itself, in every view, whatever
// its request says; an address no machine holds sees nothing.
func TestIsolation(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	paths := map[string]map[string]string{ // path → address → what it must show
		"/latest/meta-data/instance-id": {addr1: "m1", addr2: "m2"},
		"/latest/meta-data/hostname":    {addr1: "web-1", addr2: "db-1"},
		"/latest/user-data":             {addr1: userData1, addr2: userData2},
		"/nocloud/user-data":            {addr1: userData1, addr2: userData2},
	}
	for path, byAddr := range paths {
		for from, want := range byAddr {
			code, got := f.get(t, from, path)
			if code != http.StatusOK || got != want {
				t.Errorf("GET %s from %s = %d %q, want 200 %q", path, from, code, got, want)
			}
		}
		code, got := f.get(t, addrNone, path)
		if want := "no machine has address " + addrNone + "\n"; code != http.StatusNotFound || got != want {
			t.Errorf("GET %s from %s = %d %q, want 404 %q", path, addrNone, code, got, want)
		}
	}
	// Nothing of m2 in any of m1's answers, nor the other way round.
	other := map[string][]string{addr1: {"m2", "db-1", "carol", userData2, addr2}, addr2: {"m1", "web-1", "alice", userData1, addr1}}
	for from, forbidden := range other {
		for _, path := range allPaths(f, from) {
			_, got := f.get(t, from, path)
			for _, s := range forbidden {
				if strings.Contains(got, s) {
					t.Errorf("GET %s from %s shows %q of the other machine:\n%s", path, from, s, got)
				}
			}
		}
	}
	// Headers do not change who is asking.
	resp := f.do(t, http.MethodGet, addr1, "/latest/meta-data/instance-id", map[string]string{
		"X-Forwarded-For": addr2, "X-Real-IP": addr2, "Forwarded": "for=" + addr2,
	})
	if got := body(t, resp); got != "m1" {
		t.Errorf("with forwarding headers naming %s: instance-id %q, want m1", addr2, got)
	}
}

// TestUnknownAddress: addresses that identify no machine get 404 in every
// view.
func TestUnknownAddress(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	for name, from := range map[string]string{
		"no lease":             addrNone,
		"expired lease":        addrExpired,
		"lease of unknown MAC": addrStranger,
		"offered lease":        addrOffered,
		"IPv6":                 "2001:db8::1",
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/latest/meta-data/", "/latest/meta-data/instance-id", "/nocloud/meta-data", "/metadata/v1.json"} {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.RemoteAddr = net.JoinHostPort(from, "12345")
				rec := httptest.NewRecorder()
				f.handler.ServeHTTP(rec, req)
				if want := "no machine has address " + from + "\n"; rec.Code != http.StatusNotFound || rec.Body.String() != want {
					t.Errorf("GET %s from %s = %d %q, want 404 %q", path, from, rec.Code, rec.Body.String(), want)
				}
			}
		})
	}
}

// TestLeaseExpiry: a machine's metadata goes with its lease.
func TestLeaseExpiry(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	if code, _ := f.get(t, addr1, "/latest/meta-data/instance-id"); code != http.StatusOK {
		t.Fatalf("before expiry: status %d", code)
	}
	f.now = t0.Add(time.Hour)
	if code, _ := f.get(t, addr1, "/latest/meta-data/instance-id"); code != http.StatusNotFound {
		t.Errorf("at expiry: status %d, want 404", code)
	}
	// A reservation does not expire.
	if code, _ := f.get(t, addr3, "/latest/meta-data/instance-id"); code != http.StatusOK {
		t.Errorf("reservation: status %d, want 200", code)
	}
}

// allPaths lists every GET path the fixture's machine at from answers
// something on, found by walking the EC2 listings as cloud-init does,
// plus the other views.
func allPaths(f *fixture, from string) []string {
	paths := []string{"/latest/", "/latest/user-data", "/nocloud/meta-data", "/nocloud/user-data", "/nocloud/vendor-data", "/nocloud/network-config", "/metadata/v1.json"}
	var walk func(dir string)
	walk = func(dir string) {
		paths = append(paths, dir)
		req := httptest.NewRequest(http.MethodGet, dir, nil)
		req.RemoteAddr = from + ":1"
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		for line := range strings.Lines(rec.Body.String()) {
			line = strings.TrimSpace(line)
			if n, _, ok := strings.Cut(line, "="); ok {
				line = n + "/"
			}
			if strings.HasSuffix(line, "/") {
				walk(dir + line)
			} else {
				paths = append(paths, dir+line)
			}
		}
	}
	walk("/latest/meta-data/")
	walk("/latest/dynamic/")
	return paths
}

// TestNoSecrets: no answer, body or header, shows any part of a BMC.
func TestNoSecrets(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	secrets := []string{bmcPassword, bmcUser, bmcAddr, "10.99.99.99", string(bmcSealed),
		base64.StdEncoding.EncodeToString(bmcSealed), "sealed", "bmc", "password"}
	for _, from := range []string{addr1, addr2, addr3} {
		paths := allPaths(f, from)
		if len(paths) < 25 {
			t.Fatalf("walked only %d paths from %s: %q", len(paths), from, paths)
		}
		for _, path := range paths {
			resp := f.do(t, http.MethodGet, from, path, nil)
			text := body(t, resp)
			if resp.StatusCode != http.StatusOK && path != "/latest/user-data" {
				t.Errorf("GET %s from %s: status %d (listed but not served)", path, from, resp.StatusCode)
			}
			for k, v := range resp.Header {
				text += "\n" + k + ": " + strings.Join(v, ",")
			}
			for _, s := range secrets {
				if strings.Contains(strings.ToLower(text), strings.ToLower(s)) {
					t.Errorf("GET %s from %s shows %q:\n%s", path, from, s, text)
				}
			}
		}
	}
}

// TestMounted: the handler composes with the caller's mux, mounted at
// Prefixes.
func TestMounted(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	mux := http.NewServeMux()
	for _, p := range Prefixes() {
		mux.Handle(p, f.handler)
	}
	mux.HandleFunc("GET /ipxe/{file}", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "#!ipxe") })
	for path, want := range map[string]string{
		"/latest/meta-data/instance-id":     "m1",
		"/latest/meta-data/placement":       "availability-zone\nregion",
		"/2018-09-24/meta-data/instance-id": "m1",
		"/nocloud/user-data":                userData1,
		"/ipxe/x.ipxe":                      "#!ipxe",
	} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = addr1 + ":1"
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, rec.Code, rec.Body.String(), want)
		}
	}
	req := httptest.NewRequest(http.MethodPut, "/latest/api/token", nil)
	req.RemoteAddr = addr1 + ":1"
	req.Header.Set(tokenTTLHeader, "10")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("PUT token through the mux: %d", rec.Code)
	}
}

func TestNew(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	for name, cfg := range map[string]Config{
		"no DB":     {Key: make([]byte, 32)},
		"no key":    {DB: f.db},
		"short key": {DB: f.db, Key: make([]byte, 15)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
