package provision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/provision"
	sitepkg "github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// A flood of bad credentials from one source is one log line per
// minute, and every one is counted in outpost_agent_refused_total.
func TestBadCredentialsLoggedOncePerSource(t *testing.T) {
	s := newSite(t, provision.Config{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(provision.Collectors()...)
	counter := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "outpost_agent_refused_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "credential" {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	start := counter()
	for range 200 {
		if code, _ := s.do(t, addrM1, "GET", agentproto.PathWorkflow, "w1.forged", nil); code != http.StatusUnauthorized {
			t.Fatalf("a bad credential: %d", code)
		}
	}
	if n := strings.Count(s.n.Logs.String(), "agent requests refused from this source"); n != 1 {
		t.Errorf("%d log lines for 200 bad credentials from one source, want 1", n)
	}
	if got := counter() - start; got != 200 {
		t.Errorf("outpost_agent_refused_total{reason=credential} grew by %v, want 200", got)
	}
}

// fullDisk is a site whose disk is full: every report fails as a commit
// to a full Raft log does.
type fullDisk struct{ provision.Site }

func (fullDisk) Report(context.Context, string, sitepkg.Report) (*store.Workflow, error) {
	return nil, fmt.Errorf("raftnode: commit: %w", &os.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC})
}

// A report the store cannot take because the disk is full is 503 with
// Retry-After (the agent retries), not 500.
func TestReportOnFullDisk(t *testing.T) {
	s := newSite(t, provision.Config{})
	w := s.provisioning(t, 0)
	full := newSite(t, provision.Config{})
	full.handler = provision.New(provision.Config{Site: fullDisk{s.n.Site}, Store: s.n.DB, Credentials: s.creds, Now: s.clock.now}).Handler()
	body, _ := json.Marshal(agentproto.Report{Action: "a", Attempt: 1, Kind: "start"})
	req := httptest.NewRequestWithContext(t.Context(), "POST", agentproto.PathReport, bytes.NewReader(body))
	req.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(addrM1), 40000).String()
	req.Header.Set("Authorization", "Bearer "+s.creds.Workflow(w))
	rec := httptest.NewRecorder()
	full.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "disk is full") {
		t.Fatalf("a report on a full disk: %d (Retry-After %q) %s, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}
