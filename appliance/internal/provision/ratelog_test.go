package provision_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/provision"
)

// A flood of bad credentials from one source is one log line per
// minute, and every one is counted in outpost_agent_bad_credentials_total.
func TestBadCredentialsLoggedOncePerSource(t *testing.T) {
	s := newSite(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(provision.Collectors()...)
	counter := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "outpost_agent_bad_credentials_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	start := counter()
	for range 200 {
		if code, _ := s.do(t, "GET", agentproto.PathWorkflow, "w1.forged", nil); code != http.StatusUnauthorized {
			t.Fatalf("a bad credential: %d", code)
		}
	}
	if n := strings.Count(s.n.Logs.String(), "agent request with a bad credential"); n != 1 {
		t.Errorf("%d log lines for 200 bad credentials from one source, want 1", n)
	}
	if got := counter() - start; got != 200 {
		t.Errorf("outpost_agent_bad_credentials_total grew by %v, want 200", got)
	}
}
