package machinequery

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fleet is a few machines of two sites, as central's index reads them.
func fleet() []*Subject {
	eu := map[string]string{"region": "eu", "room": "r1"}
	us := map[string]string{"region": "us"}
	return []*Subject{
		{ID: "m1", Hostname: "web-01", MACs: []string{"02:00:00:00:00:01"}, Tags: []string{"gpu"}, State: "ready", Workflow: None,
			Site: "ams2", Labels: eu, OrderStatus: None},
		{ID: "m2", Hostname: "web-02", MACs: []string{"02:00:00:00:00:02"}, State: "failed", Workflow: "failed",
			Site: "ams2", Labels: eu, Order: "b1765-abc-m2", OrderStatus: "failed"},
		{ID: "m1", Hostname: "db-01", State: "provisioning", Workflow: "running",
			Site: "nyc1", Labels: us, Order: "b1765-abc-m1", OrderStatus: "running"},
		{ID: "m9", State: "ready", Workflow: None, Site: "lab-x", OrderStatus: "placed", Order: "o9"},
	}
}

func keys(q *Query, subjects []*Subject) []string {
	var out []string
	for _, s := range subjects {
		if q.Match(s) {
			out = append(out, s.Site+"/"+s.ID)
		}
	}
	return out
}

func TestParseFleet(t *testing.T) {
	tests := map[string]struct {
		q    string
		want []string
	}{
		"site":                      {"site:ams2", []string{"ams2/m1", "ams2/m2"}},
		"site pattern":              {"site:*1", []string{"nyc1/m1"}},
		"label":                     {"label:region=eu", []string{"ams2/m1", "ams2/m2"}},
		"label pattern":             {"label:region=*s", []string{"nyc1/m1"}},
		"label any value":           {"label:room", []string{"ams2/m1", "ams2/m2"}},
		"label negated":             {"-label:region=eu", []string{"nyc1/m1", "lab-x/m9"}},
		"order":                     {"order:b1765-abc-*", []string{"ams2/m2", "nyc1/m1"}},
		"order status":              {"order-status:failed,running", []string{"ams2/m2", "nyc1/m1"}},
		"order status none":         {"order-status:none", []string{"ams2/m1"}},
		"order status placed":       {"order-status:PLACED", []string{"lab-x/m9"}},
		"with the site's terms":     {"label:region=eu -state:failed tag:gpu", []string{"ams2/m1"}},
		"free word":                 {"web", []string{"ams2/m1", "ams2/m2"}},
		"mac":                       {"mac:02:00:00:00:00:02", []string{"ams2/m2"}},
		"negation by bang of sites": {"!site:ams2", []string{"nyc1/m1", "lab-x/m9"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q, err := ParseFleet(tc.q)
			if err != nil {
				t.Fatalf("ParseFleet(%q): %v", tc.q, err)
			}
			if diff := cmp.Diff(tc.want, keys(q, fleet())); diff != "" {
				t.Errorf("matches of %q (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

// TestFleetFieldsAtASite: a site's grammar has no fleet fields, and says
// which it has.
func TestFleetFieldsAtASite(t *testing.T) {
	for _, q := range []string{"site:ams2", "label:region=eu", "order:x", "order-status:failed"} {
		_, err := Parse(q)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.Reason, "unknown field") || strings.Contains(e.Reason, "fields: mac, ip, hostname, id, state, workflow, tag, site") {
			t.Errorf("Parse(%q) = %v, want an unknown field listing the site's fields", q, err)
		}
	}
}

func TestParseFleetErrors(t *testing.T) {
	tests := map[string]struct{ q, term string }{
		"bad order status":  {"state:ready order-status:lost", "order-status:lost"},
		"label without key": {"label:=eu", "label:=eu"},
		"unknown field":     {"web rack:1", "rack:1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseFleet(tc.q)
			var e *Error
			if !errors.As(err, &e) || e.Term != tc.term || !strings.HasPrefix(tc.q[e.Column-1:], tc.term) {
				t.Errorf("ParseFleet(%q) = %v, want an error naming %q", tc.q, err, tc.term)
			}
		})
	}
}
