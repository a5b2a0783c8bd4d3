package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/central/testcentral"
	"github.com/outposthq/outpost/internal/testwait"
	"github.com/outposthq/outpost/syncproto"
)

// call sends a request to central's API with its admin token and
// decodes the answer into out.
func call(t *testing.T, c *testcentral.Central, method, path string, body, out any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), method, c.URL+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d", method, path, res.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSiteAnswersOrders: a simulated site connected to a real central
// answers a power order central places with the events a real site's
// order makes; central stores each exactly once, densely, and the site
// forgets them once acknowledged.
func TestSiteAnswersOrders(t *testing.T) {
	c := testcentral.Start(t)
	var created struct{ Credential string }
	call(t, c, "POST", "/v1/sites", map[string]string{"id": "s1"}, &created)
	call(t, c, "PUT", "/v1/sites/s1/machines/m1", map[string]any{"id": "m1"}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	site, err := sim.DialSite(ctx, "ws"+strings.TrimPrefix(c.URL, "http")+syncproto.Path, "s1", created.Credential)
	if err != nil {
		t.Fatal(err)
	}
	site.AnswerOrders()
	ran := make(chan error, 1)
	go func() { ran <- site.Run(ctx, func(syncproto.Change) {}) }()
	t.Cleanup(func() { cancel(); site.Close(); <-ran })

	var res struct {
		Batch  string
		Placed []struct{ Order string }
	}
	call(t, c, "POST", "/v1/orders", map[string]any{"action": "power", "query": "site:s1", "params": map[string]string{"power": "cycle"}}, &res)
	if len(res.Placed) != 1 {
		t.Fatalf("placed %+v", res)
	}
	type stored struct {
		Seq  uint64
		Data struct {
			Kind   string
			Fields map[string]string
		}
	}
	var page struct{ Events []stored }
	testwait.For(t, "central stores the order's events", 30*time.Second, func() bool {
		call(t, c, "GET", "/v1/sites/s1/events?since=0&limit=100", nil, &page)
		return len(page.Events) >= 5 && site.Acked() == 5
	})
	var kinds []string
	for i, e := range page.Events {
		if e.Seq != uint64(i+1) || e.Data.Fields["order"] != res.Placed[0].Order {
			t.Errorf("event %d: %+v", i, e)
		}
		kinds = append(kinds, e.Data.Kind)
	}
	want := []string{"bmc.job.created", "order.created", "bmc.job.running", "bmc.job.succeeded", "order.succeeded"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v", kinds, want)
	}

	site.Record(sim.Event{Kind: "power.on", Machine: "m1", Message: "machine m1: power off → on"})
	testwait.For(t, "central stores the recorded event", 30*time.Second, func() bool { return site.Acked() == 6 })
	call(t, c, "GET", "/v1/sites/s1/events?since=0&limit=100", nil, &page)
	if len(page.Events) != 6 || page.Events[5].Data.Kind != "power.on" {
		t.Errorf("central's events %+v, want the sixth power.on", page.Events)
	}
}
