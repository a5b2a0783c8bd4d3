package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/syncproto"
)

// siteEvent is the JSON of a site's event.
func siteEvent(t *testing.T, seq uint64, machine, kind, msg string, fields map[string]string) syncproto.Event {
	raw, err := json.Marshal(map[string]any{"seq": seq, "machine_id": machine, "kind": kind, "message": msg, "fields": fields, "by": "site"})
	if err != nil {
		t.Fatal(err)
	}
	return syncproto.Event{Seq: seq, Data: raw}
}

// TestFleetRoutes: a site's events make its machines, which the fleet's
// routes show: searched, one by one with its timeline (an order placed
// at central in it, by the token's name), the sites, the summary; a
// query the grammar cannot read is 400 naming the term; the stream says
// each new version, and resumes from Last-Event-ID.
func TestFleetRoutes(t *testing.T) {
	e := newEnv(t)
	cred := e.createSite("ams2")
	if code := e.do("PUT", "/v1/sites/ams2/labels", `{"labels":{"region":"eu"}}`, nil); code != http.StatusOK {
		t.Fatalf("labels: %d", code)
	}
	conn := e.connect("ams2", cred)

	// The stream, opened before the events.
	var start fleet.Page
	e.do("GET", "/v1/fleet/machines", "", &start)
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/fleet/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(start.Version, 10))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v", err)
	}
	defer res.Body.Close()

	send(t, conn, &syncproto.Events{First: 1, Last: 3, Events: []syncproto.Event{
		siteEvent(t, 1, "m1", "machine.created", "machine m1 created (ready)", map[string]string{"state": "ready", "hostname": "web-1", "tags": `["gpu"]`}),
		siteEvent(t, 2, "m2", "machine.created", "machine m2 created (ready)", map[string]string{"state": "ready", "hostname": "db-1"}),
		siteEvent(t, 3, "m2", "power.on", "machine m2: power unknown → on", map[string]string{"from": "unknown", "to": "on"}),
	}})
	if a, ok := recv(t, conn).(*syncproto.EventsAck); !ok || a.Seq != 3 {
		t.Fatalf("ack: %+v", a)
	}
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), "id: "); ok {
			if v, _ := strconv.ParseUint(id, 10, 64); v <= start.Version {
				t.Fatalf("streamed version %d, not past %d", v, start.Version)
			}
			break
		}
	}

	var page fleet.Page
	if code := e.do("GET", "/v1/fleet/machines?q="+url.QueryEscape("label:region=eu tag:gpu"), "", &page); code != http.StatusOK ||
		page.Total != 1 || page.Machines[0].ID != "m1" || page.Machines[0].Hostname != "web-1" {
		t.Fatalf("search: %d %+v", code, page)
	}
	var bad apiError
	if code := e.do("GET", "/v1/fleet/machines?q="+url.QueryEscape("state:ready rack:1"), "", &bad); code != http.StatusBadRequest ||
		bad.Error.Field != "q" || !strings.Contains(bad.Error.Message, `"rack:1"`) {
		t.Errorf("a bad query: %d %+v", code, bad)
	}

	if code := e.do("PUT", "/v1/sites/ams2/orders/c1", `{"action":"power_cycle","machine_id":"m2"}`, nil); code != http.StatusOK {
		t.Fatalf("order: %d", code)
	}
	var m fleet.Machine
	if code := e.do("GET", "/v1/fleet/machines/ams2/m2", "", &m); code != http.StatusOK || m.Power != "on" ||
		m.LastOrder == nil || m.LastOrder.Status != fleet.OrderPlaced || m.LastOrder.By != "admin" {
		t.Fatalf("machine: %d %+v", code, m)
	}
	if code := e.do("GET", "/v1/fleet/machines/ams2/nope", "", nil); code != http.StatusNotFound {
		t.Errorf("unknown machine: %d", code)
	}
	var tl struct {
		Events []fleet.Event `json:"events"`
	}
	e.do("GET", "/v1/fleet/machines/ams2/m2/timeline?limit=10", "", &tl)
	if len(tl.Events) != 3 || tl.Events[0].Source != fleet.SourceCentral || tl.Events[0].By != "admin" {
		t.Errorf("timeline: %+v", tl.Events)
	}

	var sites struct {
		Sites []fleet.Site `json:"sites"`
	}
	e.do("GET", "/v1/fleet/sites", "", &sites)
	if len(sites.Sites) != 1 || !sites.Sites[0].Link.Connected || sites.Sites[0].Machines["ready"] != 2 || sites.Sites[0].Link.StoredSeq != 3 {
		t.Errorf("sites: %+v", sites.Sites)
	}
	var sum fleet.Summary
	e.do("GET", "/v1/fleet/summary", "", &sum)
	if sum.Machines != 2 || sum.Sites != 1 || sum.InFlightTotal != 1 || sum.ByState["ready"] != 2 {
		t.Errorf("summary: %+v", sum)
	}
}
