package httpboot

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// parallel runs the test in parallel locally and serially in CI.
func parallel(t *testing.T) {
	if os.Getenv("CI") == "" {
		t.Parallel()
	}
}

// fixture is a Server over a real store in a temporary directory:
//
//	<tmp>/store.db       the store
//	<tmp>/secret         a file outside ArtifactDir
//	<tmp>/artifacts/     ArtifactDir
//
// Its store has subnet lab (198.18.0.0/24), in which every machine put
// leases an address for its boot MAC, from which get sends requests for
// that MAC's script. The server's clock is t0.
type fixture struct {
	dir       string // the temporary directory
	artifacts string // ArtifactDir
	db        *store.DB
	srv       *Server
	handler   http.Handler
	leased    map[string]string // MAC → address
}

// unleased is an address no MAC leases: get sends requests from it for
// a MAC without a lease.
const unleased = "198.18.0.250"

const secret = "SECRET-OUTSIDE-ARTIFACT-DIR"

func newFixture(t *testing.T, objs ...store.Object) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), leased: map[string]string{}}
	f.artifacts = filepath.Join(f.dir, "artifacts")
	if err := os.Mkdir(f.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "secret"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(f.dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f.db = db
	f.serve(t, Config{})
	apptest.Put(t, f.db, t0, &store.Subnet{Name: "lab", CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}})
	f.put(t, objs...)
	return f
}

// serve (re)starts the server with cfg, its store, artifacts, credentials,
// log and clock filled in.
func (f *fixture) serve(t *testing.T, cfg Config) {
	t.Helper()
	cfg.DB, cfg.ArtifactDir, cfg.Credentials, cfg.Now = f.db, f.artifacts, testCredentials, func() time.Time { return t0 }
	cfg.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f.srv, f.handler = srv, srv.Handler()
}

// lease gives mac an active lease in lab, as the DHCP server's ACK does,
// and returns its address.
func (f *fixture) lease(t *testing.T, mac string) string {
	t.Helper()
	ip := fmt.Sprintf("198.18.0.%d", 10+len(f.leased))
	apptest.Put(t, f.db, t0, activeLease(mac, ip))
	f.leased[mac] = ip
	return ip
}

// testCredentials mint the agent credentials in scripts: a fixed key,
// so that the golden files are stable.
var testCredentials = provision.NewCredentials([]byte("httpboot test key"))

// put stores objs as the replicated state machine would, with its
// rules, each at the next Raft index. A machine stored as provisioning or
// deprovisioning gets a workflow (wf-<id>, from a one-action template, with
// the nonce nonce-<id> that the golden credentials hold), as it would have
// in a site: the installer boots for a workflow.
func (f *fixture) put(t *testing.T, objs ...store.Object) {
	t.Helper()
	for _, o := range objs {
		apptest.Put(t, f.db, t0, o)
		if l, ok := o.(*store.Lease); ok {
			f.leased[l.MAC] = l.IP
		}
		m, ok := o.(*store.Machine)
		if !ok {
			continue
		}
		for _, nic := range m.Interfaces {
			if _, ok := f.leased[nic.MAC]; nic.Boot && !ok {
				f.lease(t, nic.MAC)
			}
		}
		if m.State != store.StateProvisioning && m.State != store.StateDeprovisioning {
			continue
		}
		tpl := &store.Template{Name: "fixture", Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}}
		apptest.Put(t, f.db, t0, tpl)
		w := &store.Workflow{ID: "wf-" + m.ID, MachineID: m.ID, Template: "fixture", Purpose: store.PurposeProvision, Nonce: "nonce-" + m.ID}
		if m.State == store.StateDeprovisioning {
			w.Purpose = store.PurposeDeprovision
		}
		apptest.Put(t, f.db, t0, w)
	}
}

// activeLease is an active lease of ip in lab for mac.
func activeLease(mac, ip string) *store.Lease {
	return &store.Lease{IP: ip, MAC: mac, Subnet: "lab", State: store.LeaseActive, Starts: t0.Add(-time.Minute), Expires: t0.Add(time.Hour)}
}

// get sends GET target from the address leased to the MAC whose script
// it asks for, or from unleased.
func (f *fixture) get(t *testing.T, target string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	raw := r.URL.Query().Get("mac")
	if file, ok := strings.CutPrefix(r.URL.Path, "/ipxe/"); ok && file != "boot.ipxe" {
		raw = strings.TrimSuffix(file, ".ipxe")
	}
	from := unleased
	if mac, err := parseMAC(raw); err == nil && f.leased[mac] != "" {
		from = f.leased[mac]
	}
	return f.getFrom(t, from, target)
}

// getFrom sends GET target from address from.
func (f *fixture) getFrom(t *testing.T, from, target string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(from), 40000).String()
	return do(t, f.handler, r)
}

func do(t *testing.T, h http.Handler, r *http.Request) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestHealthz(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	res, body := f.get(t, "http://198.18.0.1/healthz")
	if res.StatusCode != http.StatusOK || body != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\"", res.StatusCode, body)
	}
}

func TestRoutesRefuse(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	tests := map[string]struct {
		method, target string
		want           int
	}{
		"no route":          {"GET", "/nothing", http.StatusNotFound},
		"root":              {"GET", "/", http.StatusNotFound},
		"post script":       {"POST", "/ipxe/boot.ipxe?mac=52:54:00:00:00:01", http.StatusMethodNotAllowed},
		"put artifact":      {"PUT", "/artifacts/x", http.StatusMethodNotAllowed},
		"script not .ipxe":  {"GET", "/ipxe/52:54:00:00:00:01", http.StatusNotFound},
		"dot segment":       {"GET", "/ipxe/../healthz", http.StatusNotFound},
		"double slash":      {"GET", "//healthz", http.StatusNotFound},
		"trailing slash":    {"GET", "/healthz/", http.StatusNotFound},
		"script, dot again": {"GET", "/ipxe/./boot.ipxe?mac=52:54:00:00:00:01", http.StatusNotFound},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://198.18.0.1"+tt.target, nil)
			res, body := do(t, f.handler, r)
			if res.StatusCode != tt.want {
				t.Errorf("%s %s = %d %q, want %d", tt.method, tt.target, res.StatusCode, body, tt.want)
			}
			if strings.Contains(body, "#!ipxe") {
				t.Errorf("%s %s returned a script", tt.method, tt.target)
			}
		})
	}
}

func TestNewChecksConfig(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	tests := map[string]Config{
		"no db":           {ArtifactDir: f.artifacts},
		"no artifact dir": {DB: f.db},
		"missing dir":     {DB: f.db, ArtifactDir: filepath.Join(f.dir, "nope")},
		"dir is a file":   {DB: f.db, ArtifactDir: filepath.Join(f.dir, "secret")},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if s, err := New(cfg); err == nil {
				s.Close()
				t.Errorf("New(%+v) succeeded, want an error", cfg)
			}
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.artifacts, "k"), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if res, _ := f.get(t, "/artifacts/k"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET after Close = %d, want 404", res.StatusCode)
	}
}
