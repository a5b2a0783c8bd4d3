package sim_test

import (
	"context"
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
// retries: the workflow succeeds.
func TestAgentLosesOrphan(t *testing.T) {
	plan, err := workflow.NewPlan([]workflow.Action{{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}}},
		map[string][]string{"disk.wipe": {"device"}})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := workflow.Start(workflow.NewState(plan, time.Time{}), "wipe", 1, time.Now()) // the agent before
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var kinds []string
	view := func(w http.ResponseWriter) {
		a, _ := st.Action("wipe")
		json.NewEncoder(w).Encode(agentproto.Workflow{ID: "wf-1", Status: string(st.Status), Ready: workflow.Ready(st, time.Now()),
			Actions: []agentproto.Action{{Name: "wipe", Type: "disk.wipe", Status: string(a.Status), Attempt: a.Attempt}}})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodGet {
			view(w)
			return
		}
		var rep agentproto.Report
		json.NewDecoder(r.Body).Decode(&rep)
		var err error
		switch rep.Kind {
		case agentproto.ReportStart:
			st, _, err = workflow.Start(st, rep.Action, rep.Attempt, time.Now())
		case agentproto.ReportFinish:
			st, _, err = workflow.Finish(st, rep.Action, rep.Attempt, rep.OK, rep.Message, time.Now())
		case agentproto.ReportLost:
			st, _, err = workflow.Lose(st, rep.Action, rep.Attempt, rep.Message, time.Now())
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		kinds = append(kinds, rep.Kind)
		view(w)
	}))
	defer srv.Close()
	var stats sim.Stats
	a, err := sim.NewAgent(srv.Client(), srv.URL, "tok", &stats)
	if err != nil {
		t.Fatal(err)
	}
	wf, err := a.Run(t.Context())
	if err != nil || wf.Status != "succeeded" {
		t.Fatalf("Run: %+v, %v", wf, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(kinds, " "); got != "lost start finish" {
		t.Errorf("reports applied: %s, want lost start finish", got)
	}
}
