package httpboot

import (
	"cmp"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
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
type fixture struct {
	dir       string // the temporary directory
	artifacts string // ArtifactDir
	db        *store.DB
	srv       *Server
	handler   http.Handler
	index     uint64 // last Raft index used by put
}

const secret = "SECRET-OUTSIDE-ARTIFACT-DIR"

func newFixture(t *testing.T, objs ...store.Object) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
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
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.srv, err = New(Config{DB: db, ArtifactDir: f.artifacts, Credentials: testCredentials, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.srv.Close() })
	f.handler = f.srv.Handler()
	f.put(t, objs...)
	return f
}

// testCredentials mint the agent credentials in scripts: a fixed key,
// so that the golden files are stable.
var testCredentials = provision.NewCredentials([]byte("httpboot test key"))

// put stores objs as the replicated state machine would, each at the next
// Raft index. A machine stored as provisioning or deprovisioning gets a
// workflow (wf-<id>, from a one-action template), as it would have in a
// site: the installer boots for a workflow.
func (f *fixture) put(t *testing.T, objs ...store.Object) {
	t.Helper()
	err := f.db.Update(func(tx *store.Tx) error {
		for _, o := range objs {
			f.index++
			if err := tx.UnsafePut(o, store.Write{Index: f.index, Time: t0}); err != nil {
				return err
			}
			m, ok := o.(*store.Machine)
			if !ok || (m.State != store.StateProvisioning && m.State != store.StateDeprovisioning) {
				continue
			}
			f.index++
			tpl := &store.Template{Name: "fixture", Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}}
			if err := tx.UnsafePut(tpl, store.Write{Index: f.index, Time: t0}); err != nil {
				return err
			}
			w := &store.Workflow{ID: "wf-" + m.ID, MachineID: m.ID, Template: "fixture", Purpose: store.PurposeProvision, Nonce: "nonce-" + m.ID}
			if m.State == store.StateDeprovisioning {
				w.Purpose = store.PurposeDeprovision
			}
			f.index++
			if err := createWorkflow(tx, m, tpl, w, store.Write{Index: f.index, Time: t0}); err != nil {
				return err
			}
		}
		return tx.UnsafeSetAppliedIndex(f.index)
	})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
}

// createWorkflow stores w as the site's state machine creates a workflow
// (package site keeps that rule; this fixture writes the store without
// it, to keep the workflow's nonce, which the golden credentials hold):
// the template bound with the machine's values, the plan's initial state,
// and the machine following it.
func createWorkflow(tx *store.Tx, m *store.Machine, tpl *store.Template, w *store.Workflow, wr store.Write) error {
	w.Values = map[string]string{actions.ValueMachineID: m.ID, actions.ValueHostname: cmp.Or(m.Hostname, m.ID)}
	bound, err := workflow.Bind(tpl.PlanActions(), w.Values)
	if err != nil {
		return err
	}
	plan, err := workflow.NewPlan(bound, actions.Required())
	if err != nil {
		return err
	}
	st := workflow.NewState(plan, time.Time{})
	w.State = &st
	if err := tx.UnsafePut(w, wr); err != nil {
		return err
	}
	m.Workflow = w.ID
	return tx.UnsafePut(m, wr)
}

func (f *fixture) get(t *testing.T, target string) (*http.Response, string) {
	t.Helper()
	return do(t, f.handler, httptest.NewRequest(http.MethodGet, target, nil))
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
