package metadata

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/store"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// Secrets every machine's BMC holds; no answer may contain any of them.
const (
	bmcPassword = "BMC-PASSWORD-hunter2"
	bmcUser     = "bmc-user-secret"
	bmcAddr     = "10.99.99.99:623"
)

var bmcSealed = []byte("SEALED-BMC-PASSWORD")

// Addresses of the fixture's machines.
const (
	addr1        = "198.18.0.101" // m1: active lease, workflow with keys and user-data
	addr2        = "198.18.0.102" // m2: active lease, workflow, aarch64
	addr3        = "198.18.0.10"  // m3: static reservation, no lease, no workflow
	addrExpired  = "198.18.0.104" // m4's lease has expired
	addrStranger = "198.18.0.105" // active lease of a MAC no machine has
	addrOffered  = "198.18.0.106" // m6 was offered the address, never took it
	addrNone     = "198.18.0.99"  // nothing
)

const (
	keys1     = "ssh-ed25519 AAAAC3-alice alice@example.net\n\n  ssh-rsa AAAAB3-bob bob@example.net  \n"
	userData1 = "#cloud-config\nruncmd:\n  - echo m1\n"
	userData2 = "#!/bin/sh\necho m2\n"
)

// parallel runs the test in parallel locally and serially in CI.
func parallel(t *testing.T) {
	if os.Getenv("CI") == "" {
		t.Parallel()
	}
}

// fixture is a Server over a real store holding the machines above.
type fixture struct {
	db      *store.DB
	handler http.Handler
	now     time.Time // the server's clock
	index   uint64
}

func newFixture(t testing.TB) *fixture {
	return newFixtureWith(t, func(*fixture, *Config) {})
}

// newFixtureWith is newFixture with the server's Config as edited by
// edit, which may also set the fixture up.
func newFixtureWith(t testing.TB, edit func(*fixture, *Config)) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, now: t0}
	cfg := Config{
		DB:  db,
		Key: []byte("0123456789abcdef0123456789abcdef"),
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: func() time.Time { return f.now },
	}
	edit(f, &cfg)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.handler = srv.Handler()
	f.put(t,
		&store.Settings{SiteName: "fra1", UnknownMachines: "discover"},
		&store.Subnet{
			Name: "lab", CIDR: "198.18.0.0/24", Gateway: "198.18.0.1", DNS: []string{"198.18.0.2", "9.9.9.9"},
			Domain: "example.net", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}},
		},
		&store.Template{Name: "install", Actions: []store.Action{{Name: "reboot", Type: "reboot"}}},
		machine("m1", "52:54:00:12:34:01", "", "m1.example.net", "x86_64"),
		machine("m2", "52:54:00:12:34:02", "", "m2.example.net", "aarch64"),
		machine("m3", "52:54:00:12:34:03", addr3, "", "x86_64"),
		machine("m4", "52:54:00:12:34:04", "", "", "x86_64"),
		machine("m6", "52:54:00:12:34:06", "", "", "x86_64"),
		lease(addr1, "52:54:00:12:34:01", store.LeaseActive, t0.Add(time.Hour)),
		lease(addr2, "52:54:00:12:34:02", store.LeaseActive, t0.Add(time.Hour)),
		lease(addrExpired, "52:54:00:12:34:04", store.LeaseActive, t0.Add(-time.Minute)),
		lease(addrStranger, "52:54:00:99:99:99", store.LeaseActive, t0.Add(time.Hour)),
		lease(addrOffered, "52:54:00:12:34:06", store.LeaseOffered, t0.Add(time.Hour)),
		&store.Workflow{ID: "wf1", MachineID: "m1", Template: "install", Values: map[string]string{
			actions.ValueHostname: "web-1", actions.ValueSSHKeys: keys1, actions.ValueUserData: userData1,
		}},
		&store.Workflow{ID: "wf2", MachineID: "m2", Template: "install", Values: map[string]string{
			actions.ValueHostname: "db-1", actions.ValueSSHKeys: "ssh-ed25519 AAAAC3-carol carol", actions.ValueUserData: userData2,
		}},
	)
	// The store makes a new workflow its machine's current one; say so
	// here in case that ever moves elsewhere.
	f.update(t, func(tx *store.Tx) error {
		for id, wf := range map[string]string{"m1": "wf1", "m2": "wf2"} {
			m, err := store.Get[store.Machine](tx, id)
			if err != nil || m.Workflow == wf {
				return err
			}
			m.Workflow = wf
			if err := tx.UnsafePutMachine(m, f.write()); err != nil {
				return err
			}
		}
		return nil
	})
	return f
}

func machine(id, mac, ip, hostname, arch string) *store.Machine {
	return &store.Machine{
		ID: id, Hostname: hostname, Arch: arch, State: store.StateReady, Tags: []string{"rack-1"},
		Interfaces: []store.Interface{
			{Name: "ipmi0", MAC: "02:00:00:00:00:" + id[1:] + id[1:]},
			{Name: "eth0", MAC: mac, IP: ip, Subnet: "lab", Boot: true},
		},
		BMC: &store.BMC{Address: bmcAddr, Driver: "ipmi", Username: bmcUser, Password: bmcPassword, SealedPassword: bmcSealed},
	}
}

func lease(ip, mac string, state store.LeaseState, expires time.Time) *store.Lease {
	return &store.Lease{IP: ip, MAC: mac, Subnet: "lab", State: state, Starts: t0.Add(-2 * time.Hour), Expires: expires}
}

func (f *fixture) write() store.Write {
	f.index++
	return store.Write{Index: f.index, Time: t0.Add(-3 * time.Hour)}
}

func (f *fixture) update(t testing.TB, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := f.db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// put stores objs as the site's state machine would, with its rules,
// each at the next Raft index: a new workflow is bound to its template
// and becomes its machine's current one.
func (f *fixture) put(t testing.TB, objs ...store.Object) {
	t.Helper()
	apptest.Put(t, f.db, t0.Add(-3*time.Hour), objs...)
	f.index = f.db.AppliedIndex()
}

// do sends a request from addr and returns the answer.
func (f *fixture) do(t *testing.T, method, from, path string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = from + ":12345"
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec.Result()
}

// get returns the status and body of GET path from addr.
func (f *fixture) get(t *testing.T, from, path string) (int, string) {
	t.Helper()
	resp := f.do(t, http.MethodGet, from, path, nil)
	return resp.StatusCode, body(t, resp)
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type answer struct {
	Status int
	Body   string
}

// checkAnswers compares each path's answer to its address.
func checkAnswers(t *testing.T, f *fixture, from string, tests map[string]answer) {
	t.Helper()
	for path, want := range tests {
		t.Run(path, func(t *testing.T) {
			code, got := f.get(t, from, path)
			if diff := cmp.Diff(want, answer{code, got}); diff != "" {
				t.Errorf("GET %s from %s (-want +got):\n%s", path, from, diff)
			}
		})
	}
}
