package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/syncproto"
)

// The fleet's size in portal.fleet.
const (
	fleetSites       = 1000
	fleetPerSite     = 100
	fleetRequests    = 40 // per query
	fleetPageMachine = 100
)

// fleetQueries are the searches portal.fleet times: what an operator of
// the portal's machines page types.
var fleetQueries = []string{
	"",
	"state:failed",
	"label:region=eu state:provisioned",
	"site:sim00* tag:gpu",
	"hostname:db-* -state:ready",
	"order-status:failed,running",
	"mac:02:00:00:0a:*",
	"web",
}

// benchPortalFleet loads fleetSites sites of fleetPerSite machines each
// into a real centrald the way sites do: each site connects (a simulated
// site, sim.Site) and sends its machines' events (created, powered,
// provisioned or failed, with their orders) in batches, which central
// stores and derives the fleet from. It then times GET
// /v1/fleet/machines (a page of 100) for each of fleetQueries,
// fleetRequests times each: p99_ms is the 99th percentile of the server
// time each answer's Server-Timing header reports (the search and the
// page, not the JSON's transfer), client_p99_ms that of the whole
// request on loopback.
func benchPortalFleet(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	dir, err := os.MkdirTemp("", "outpost-bench-portal-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	centrald, err := goBuild(ctx, dir, "centrald", "./central/cmd/centrald")
	if err != nil {
		return err
	}
	var line string
	r := lab.NewRunner(ctx, "bench-portal-fleet", discardLog{log})
	err = r.Run(func(t lab.T) {
		cen := startCentral(t, centrald, 1)
		load := time.Now()
		creds := createSites(t, cen, fleetSites, 64)
		forEach(t, fleetSites, 64, func(i int) error {
			labels := map[string]string{"region": []string{"eu", "us", "ap"}[i%3], "room": fmt.Sprintf("r%d", i%7)}
			if err := cen.do(t.Context(), "PUT", "/v1/sites/"+siteID(i)+"/labels", map[string]any{"labels": labels}, nil); err != nil {
				return err
			}
			s, err := sim.DialSite(t.Context(), "ws://"+cen.addr+syncproto.Path, siteID(i), creds[i])
			if err != nil {
				return err
			}
			defer s.Close()
			return s.SendEvents(t.Context(), 1, fleetSiteEvents(i))
		})
		var sum struct {
			Machines int `json:"machines"`
		}
		if err := cen.do(ctx, "GET", "/v1/fleet/summary", nil, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Machines != fleetSites*fleetPerSite {
			t.Fatalf("central's fleet has %d machines, want %d", sum.Machines, fleetSites*fleetPerSite)
		}
		fmt.Fprintf(os.Stderr, "portal.fleet: %d machines of %d sites loaded through their events in %.1fs\n",
			sum.Machines, fleetSites, time.Since(load).Seconds())
		server, client := timeFleetQueries(t, cen)
		p99 := func(d []float64) float64 { slices.Sort(d); return d[len(d)*99/100] }
		line = fmt.Sprintf("BENCH portal.fleet sites=%d machines=%d p99_ms=%.1f client_p99_ms=%.1f",
			fleetSites, sum.Machines, p99(server), p99(client))
	})
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

// timeFleetQueries requests each query's first page fleetRequests
// times and returns the server's and the client's times, in ms.
func timeFleetQueries(t lab.T, cen *centralProc) (server, client []float64) {
	for _, q := range fleetQueries {
		var total int
		for range fleetRequests {
			start := time.Now()
			req, err := http.NewRequestWithContext(t.Context(), "GET",
				cen.url+"/v1/fleet/machines?limit="+strconv.Itoa(fleetPageMachine)+"&q="+url.QueryEscape(q), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+cen.token)
			resp, err := cen.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var page struct {
				Total int `json:"total"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /v1/fleet/machines?q=%s: %s %v", q, resp.Status, err)
			}
			client = append(client, float64(time.Since(start).Microseconds())/1000)
			dur, ok := serverTiming(resp.Header.Get("Server-Timing"))
			if !ok {
				t.Fatalf("GET /v1/fleet/machines: no Server-Timing in %q", resp.Header.Get("Server-Timing"))
			}
			server = append(server, dur)
			total = page.Total
		}
		fmt.Fprintf(os.Stderr, "portal.fleet: q=%q matches %d\n", q, total)
	}
	return server, client
}

// serverTiming reads the dur of a Server-Timing header's first metric.
func serverTiming(h string) (float64, bool) {
	_, after, ok := strings.Cut(h, "dur=")
	if !ok {
		return 0, false
	}
	after, _, _ = strings.Cut(after, ",")
	v, err := strconv.ParseFloat(strings.TrimSpace(after), 64)
	return v, err == nil
}

// fleetSiteEvents are site i's events, as an appliance records them: its
// machines created, a third powered on and provisioned, a tenth failed
// with their order, a few provisioning now.
func fleetSiteEvents(i int) [][]byte {
	var out [][]byte
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	add := func(machine, kind, msg string, fields map[string]string) {
		at = at.Add(time.Second)
		raw, _ := json.Marshal(map[string]any{"seq": len(out) + 1, "time": at, "machine_id": machine, "kind": kind,
			"message": msg, "fields": fields, "by": "site"})
		out = append(out, raw)
	}
	for k := range fleetPerSite {
		id := fmt.Sprintf("m%03d", k)
		host := fmt.Sprintf("%s-%s-%02d", []string{"web", "db", "gpu", "cache"}[k%4], siteID(i), k)
		tags := `["rack-` + strconv.Itoa(k%8) + `"]`
		if k%5 == 0 {
			tags = `["rack-` + strconv.Itoa(k%8) + `","gpu"]`
		}
		mac := fmt.Sprintf(`["02:00:%02x:%02x:%02x:01"]`, i>>8, i&0xff, k)
		add(id, "machine.created", "machine "+id+" created (ready)", map[string]string{"state": "ready", "hostname": host, "macs": mac, "tags": tags})
		switch {
		case k%10 == 3:
			order := "o-" + id
			add(id, "order.created", "order "+order+": provision machine "+id, map[string]string{"order": order, "action": "provision"})
			add(id, "workflow.created", "workflow "+order+" created from template install (3 actions)", map[string]string{"workflow": order, "template": "install", "purpose": "provision"})
			add(id, "machine.state", "machine "+id+": ready → provisioning", map[string]string{"from": "ready", "to": "provisioning", "workflow": order})
			add(id, "workflow.failed", "workflow "+order+" failed: write failed", map[string]string{"workflow": order, "from": "running", "to": "failed"})
			add(id, "machine.state", "machine "+id+": provisioning → failed: image.write: checksum mismatch", map[string]string{"from": "provisioning", "to": "failed", "workflow": order})
			add(id, "order.failed", "order "+order+" failed: workflow "+order+" failed", map[string]string{"order": order, "action": "provision"})
		case k%3 == 0:
			add(id, "power.on", "machine "+id+": power unknown → on", map[string]string{"from": "unknown", "to": "on"})
			order := "o-" + id
			add(id, "order.created", "order "+order+": provision machine "+id, map[string]string{"order": order, "action": "provision"})
			add(id, "workflow.created", "workflow "+order+" created from template install (3 actions)", map[string]string{"workflow": order, "template": "install", "purpose": "provision"})
			add(id, "machine.state", "machine "+id+": ready → provisioning", map[string]string{"from": "ready", "to": "provisioning", "workflow": order})
			if k%9 == 0 {
				add(id, "action.running", "write running", map[string]string{"workflow": order, "action": "write", "from": "pending", "to": "running"})
				continue // provisioning now
			}
			add(id, "workflow.succeeded", "workflow "+order+" succeeded", map[string]string{"workflow": order, "from": "running", "to": "succeeded"})
			add(id, "machine.state", "machine "+id+": provisioning → provisioned", map[string]string{"from": "provisioning", "to": "provisioned", "workflow": order})
			add(id, "order.succeeded", "order "+order+" succeeded", map[string]string{"order": order, "action": "provision"})
		}
	}
	return out
}
