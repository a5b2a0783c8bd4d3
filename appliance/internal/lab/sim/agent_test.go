package sim_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
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
