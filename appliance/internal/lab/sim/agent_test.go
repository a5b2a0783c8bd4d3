package sim_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// TestAgentRediscover: the node outpost.url names is dead (nothing
// listens on its port); after three unanswered requests the agent asks
// Rediscover, which names a node serving the same port, and the
// workflow is fetched there; without Rediscover the agent would retry
// the dead node until its context ends.
func TestAgentRediscover(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2 (all of 127/8 is loopback on Linux): %v", err)
	}
	var fetched atomic.Int32
	live := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != agentproto.PathWorkflow || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		fetched.Add(1)
		json.NewEncoder(w).Encode(agentproto.Workflow{ID: "wf-1", Status: "succeeded"})
	}))
	live.Listener.Close()
	live.Listener = ln
	live.Start()
	defer live.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	var stats sim.Stats
	a, err := sim.NewAgent(live.Client(), "http://127.0.0.1:"+port, "tok", &stats)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	a.Rediscover = func(context.Context) (string, error) {
		asked.Add(1)
		return "127.0.0.2", nil
	}
	wf, err := a.Run(t.Context())
	if err != nil || wf.Status != "succeeded" {
		t.Fatalf("Run: %+v, %v", wf, err)
	}
	if asked.Load() != 1 || fetched.Load() != 1 {
		t.Errorf("Rediscover asked %d times, the live node fetched from %d times; want 1 and 1", asked.Load(), fetched.Load())
	}
	if n := stats.Counts()["agent: the appliance stopped answering; found it again through DHCP"]; n != 1 {
		t.Errorf("stats: %v", stats.Counts())
	}
}

// TestAgentLosesOrphan: the agent of a machine reset during its wipe
// (attempt 1 running) reports it lost, and runs the retry the appliance
// makes of it (the workflow package's Lose), though the wipe has no
// retries: the workflow succeeds. An appliance of a release before lost
// reports refuses one as bad input (400): the agent reports the attempt
// failed instead, as the real agent does, and runs the action's retry.
func TestAgentLosesOrphan(t *testing.T) {
	for name, tc := range map[string]struct {
		old     bool
		retries int
		reports string
	}{
		"lost":                {false, 0, "lost start finish"},
		"to an older release": {true, 1, "finish start finish"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newWorkflowAPI(t, workflow.Action{Name: "wipe", Type: "disk.wipe", Retries: tc.retries, Backoff: time.Millisecond,
				Args: map[string]string{"device": "/dev/vda"}})
			f.old = tc.old
			f.with(func() {
				var err error
				if f.st, _, err = workflow.Start(f.st, "wipe", 1, time.Now()); err != nil { // the agent before
					t.Fatal(err)
				}
			})
			if wf := f.run(t, nil); wf.Status != "succeeded" {
				t.Fatalf("workflow %+v", wf)
			}
			if got := f.kinds(); got != tc.reports {
				t.Errorf("reports applied: %s, want %s", got, tc.reports)
			}
		})
	}
}

// TestAgentDamagedImage: an image download damaged on its way in (one
// byte flipped before the agent hashes it) is downloaded again within
// the attempt, which succeeds; a link that damages every download fails
// the attempt with the mismatch.
func TestAgentDamagedImage(t *testing.T) {
	img := []byte(strings.Repeat("outpost test image ", 4096))
	sum := sha256.Sum256(img)
	for name, tc := range map[string]struct {
		damaged int // downloads damaged, from the first
		status  string
	}{"once": {1, "succeeded"}, "always": {100, "failed"}} {
		t.Run(name, func(t *testing.T) {
			f := newWorkflowAPI(t, workflow.Action{Name: "write", Type: "image.write",
				Args: map[string]string{"device": "/dev/vda", "url": "/img", "sha256": hex.EncodeToString(sum[:])}})
			f.image = img
			var asked atomic.Int32
			wf := f.run(t, func() bool { return int(asked.Add(1)) <= tc.damaged })
			if wf.Status != tc.status || asked.Load() != 2 {
				t.Fatalf("workflow %s (%s) after %d downloads, want %s after 2", wf.Status, wf.Reason, asked.Load(), tc.status)
			}
			if tc.status == "failed" && !strings.Contains(wf.Reason, "sha256 mismatch") {
				t.Errorf("reason %q, want the mismatch", wf.Reason)
			}
		})
	}
}

// workflowAPI is an agent API over the workflow package's state
// machine, serving one image at /img.
type workflowAPI struct {
	srv   *httptest.Server
	mu    sync.Mutex
	st    workflow.State
	image []byte
	kind  []string // the kinds of the reports applied
	old   bool     // answer as a release before lost reports
}

func newWorkflowAPI(t *testing.T, actions ...workflow.Action) *workflowAPI {
	plan, err := workflow.NewPlan(actions, map[string][]string{"disk.wipe": {"device"}, "image.write": {"url", "device"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &workflowAPI{st: workflow.NewState(plan, time.Time{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *workflowAPI) with(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *workflowAPI) kinds() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.kind, " ")
}

// run runs an agent on f until its workflow ends; damage is its Damage.
func (f *workflowAPI) run(t *testing.T, damage func() bool) *agentproto.Workflow {
	t.Helper()
	a, err := sim.NewAgent(f.srv.Client(), f.srv.URL, "tok", &sim.Stats{})
	if err != nil {
		t.Fatal(err)
	}
	a.Damage = damage
	wf, err := a.Run(t.Context())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return wf
}

func (f *workflowAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/img":
		w.Write(f.image)
		return
	case r.Method == http.MethodGet:
		f.view(w)
		return
	}
	var rep agentproto.Report
	json.NewDecoder(r.Body).Decode(&rep)
	if f.old && rep.Kind == agentproto.ReportLost {
		http.Error(w, `{"error":{"code":"invalid","message":"\"lost\" is not one of start, progress, finish","field":"report.kind"}}`, http.StatusBadRequest)
		return
	}
	var err error
	switch now := time.Now(); rep.Kind {
	case agentproto.ReportStart:
		f.st, _, err = workflow.Start(f.st, rep.Action, rep.Attempt, now)
	case agentproto.ReportProgress:
		f.st, _, err = workflow.Progress(f.st, rep.Action, rep.Attempt, rep.Progress, rep.Message, now)
	case agentproto.ReportFinish:
		f.st, _, err = workflow.Finish(f.st, rep.Action, rep.Attempt, rep.OK, rep.Message, now)
	case agentproto.ReportLost:
		f.st, _, err = workflow.Lose(f.st, rep.Action, rep.Attempt, rep.Message, now)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	if rep.Kind != agentproto.ReportProgress {
		f.kind = append(f.kind, rep.Kind)
	}
	f.view(w)
}

// view writes the workflow as the agent API shows it. f.mu is held.
func (f *workflowAPI) view(w http.ResponseWriter) {
	wf := agentproto.Workflow{ID: "wf-1", Status: string(f.st.Status), Reason: f.st.Reason, Ready: workflow.Ready(f.st, time.Now())}
	for _, a := range f.st.Actions {
		spec, _ := f.st.Plan.Action(a.Name)
		wf.Actions = append(wf.Actions, agentproto.Action{Name: a.Name, Type: spec.Type, Args: spec.Args, Status: string(a.Status), Attempt: a.Attempt})
	}
	json.NewEncoder(w).Encode(wf)
}
