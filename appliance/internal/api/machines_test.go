package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
)

// TestMachineSearch: GET /v1/machines?q= answers a viewer with the
// machines that match, reading the leases the DHCP server committed; a
// query it cannot read is a 400 naming the term.
func TestMachineSearch(t *testing.T) {
	n := apptest.Start(t)
	for id, body := range map[string]string{
		"m1": `{"hostname":"web-01","tags":["gpu"],"interfaces":[{"mac":"02:00:00:00:00:01"}]}`,
		"m2": `{"hostname":"web-02","interfaces":[{"mac":"02:00:00:00:00:02"}]}`,
		"m3": `{"hostname":"db-01","state":"failed","reason":"disk","interfaces":[{"mac":"0a:00:00:00:00:03"}]}`,
	} {
		if code, resp := call(t, n, "PUT", "/v1/machines/"+id, n.Token, body); code != http.StatusCreated {
			t.Fatalf("PUT machine %s: %d %s", id, code, resp)
		}
	}
	if _, err := n.Site.PutSubnet(t.Context(), &store.Subnet{Name: "lab", CIDR: "198.18.0.0/24",
		Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}}, 0); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := n.Site.CommitLease(t.Context(), &store.Lease{IP: "198.18.0.120", MAC: "02:00:00:00:00:02", Subnet: "lab",
		State: store.LeaseActive, Starts: now, Expires: now.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	viewer := createToken(t, n, "tech-laptop", access.Viewer)
	for q, want := range map[string][]string{
		"":                           {"m1", "m2", "m3"},
		"web":                        {"m1", "m2"},
		"-tag:gpu":                   {"m2", "m3"},
		"ip:198.18.0.0/24":           {"m2"},
		"mac:02:00:* !state:ready":   nil,
		"state:failed,ready tag:gpu": {"m1"},
	} {
		if diff := cmp.Diff(want, search(t, n, viewer, q)); diff != "" {
			t.Errorf("q=%q (-want +got):\n%s", q, diff)
		}
	}
	code, body := call(t, n, "GET", "/v1/machines?q="+url.QueryEscape("web stat:failed"), viewer, "")
	e := decodeErr(t, body)
	if code != http.StatusBadRequest || e.Error.Field != "q" || e.Error.Message != `term "stat:failed" at column 5: unknown field "stat" (fields: mac, ip, hostname, id, state, workflow, tag)` {
		t.Errorf("bad query: %d %+v", code, e)
	}
}

// search returns the ids of the machines GET /v1/machines?q= answers.
func search(t *testing.T, n *apptest.Node, token, q string) []string {
	t.Helper()
	code, body := call(t, n, "GET", "/v1/machines?q="+url.QueryEscape(q), token, "")
	var out struct{ Items []store.Machine }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("search %q: %d %s", q, code, body)
	}
	var ids []string
	for _, m := range out.Items {
		ids = append(ids, m.ID)
	}
	return ids
}
