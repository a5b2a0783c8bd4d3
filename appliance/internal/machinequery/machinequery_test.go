package machinequery_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/machinequery"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fleet is a handful of machines, their leases and workflows.
func fleet() ([]*store.Machine, []*store.Lease, []*store.Workflow) {
	machines := []*store.Machine{
		{ID: "m1", Hostname: "web-01", State: store.StateReady, Tags: []string{"gpu", "rack1"},
			Interfaces: []store.Interface{{MAC: "02:00:00:00:00:01", IP: "198.18.1.10"}}},
		{ID: "m2", Hostname: "web-02", State: store.StateFailed, Tags: []string{"rack1"}, Workflow: "w2",
			Interfaces: []store.Interface{{MAC: "02:00:00:00:00:02"}}},
		{ID: "m3", Hostname: "db-01", State: store.StateProvisioning, Tags: []string{"odd tag", "a,b"}, Workflow: "w3",
			Interfaces: []store.Interface{{MAC: "0a:bb:00:00:00:03"}, {MAC: "0a:bb:00:00:00:33"}}},
		{ID: "rack2-m4", State: store.StateProvisioned, Workflow: "gone",
			Interfaces: []store.Interface{{MAC: "0a:bb:00:00:00:04"}}},
	}
	leases := []*store.Lease{
		{IP: "198.18.2.5", MAC: "02:00:00:00:00:02", MachineID: "m2", Subnet: "lab", State: store.LeaseActive, Starts: t0, Expires: t0.Add(time.Hour)},
		// Found by MAC: the lease names no machine.
		{IP: "198.18.2.6", MAC: "0a:bb:00:00:00:33", Subnet: "lab", State: store.LeaseOffered, Starts: t0, Expires: t0.Add(time.Minute)},
		// Not current: expired, released, declined.
		{IP: "198.18.3.1", MAC: "0a:bb:00:00:00:04", MachineID: "rack2-m4", Subnet: "lab", State: store.LeaseActive, Starts: t0.Add(-2 * time.Hour), Expires: t0.Add(-time.Hour)},
		{IP: "198.18.3.2", MAC: "0a:bb:00:00:00:04", MachineID: "rack2-m4", Subnet: "lab", State: store.LeaseReleased, Starts: t0, Expires: t0.Add(time.Hour)},
		{IP: "198.18.3.3", MAC: "0a:bb:00:00:00:04", Subnet: "lab", State: store.LeaseDeclined, Starts: t0, Expires: t0.Add(time.Hour)},
	}
	workflows := []*store.Workflow{
		{ID: "w2", MachineID: "m2", Template: "install", State: workflowState(workflow.Failed)},
		{ID: "w3", MachineID: "m3", Template: "install", State: workflowState(workflow.Running)},
	}
	return machines, leases, workflows
}

// workflowState is the state of a one-action workflow brought to the
// status by the workflow's own transitions.
func workflowState(status workflow.Status) *workflow.State {
	plan, err := workflow.NewPlan([]workflow.Action{{Name: "reboot", Type: "reboot"}}, actions.Required())
	if err != nil {
		panic(err)
	}
	st := workflow.NewState(plan, time.Time{})
	if status != workflow.Pending {
		st, _, err = workflow.Start(st, "reboot", 1, t0)
	}
	if err == nil && status.Final() {
		st, _, err = workflow.Finish(st, "reboot", 1, status == workflow.Succeeded, "done", t0)
	}
	if err != nil || st.Status != status {
		panic(fmt.Sprintf("workflow in %s, not %s: %v", st.Status, status, err))
	}
	return &st
}

func TestMatch(t *testing.T) {
	tests := map[string]struct {
		q    string
		want []string
	}{
		"empty matches all":        {"", []string{"m1", "m2", "m3", "rack2-m4"}},
		"blank matches all":        {" \t ", []string{"m1", "m2", "m3", "rack2-m4"}},
		"free word in hostname":    {"web", []string{"m1", "m2"}},
		"free word is any case":    {"WEB-0", []string{"m1", "m2"}},
		"free word in id":          {"rack2", []string{"rack2-m4"}},
		"free word in a MAC":       {"00:33", []string{"m3"}},
		"free word as MAC prefix":  {"0a:bb:*", []string{"m3", "rack2-m4"}},
		"free words all apply":     {"web 01", []string{"m1"}},
		"mac exact":                {"mac:02:00:00:00:00:02", []string{"m2"}},
		"mac in another form":      {"mac:02-00-00-00-00-02", []string{"m2"}},
		"mac upper case":           {"MAC:0A:BB:00:00:00:33", []string{"m3"}},
		"mac pattern":              {"mac:02:00:*", []string{"m1", "m2"}},
		"ip reserved":              {"ip:198.18.1.10", []string{"m1"}},
		"ip of an active lease":    {"ip:198.18.2.5", []string{"m2"}},
		"ip of a lease by MAC":     {"ip:198.18.2.6", []string{"m3"}},
		"ip prefix":                {"ip:198.18.0.0/16", []string{"m1", "m2", "m3"}},
		"ip prefix not masked":     {"ip:198.18.2.1/24", []string{"m2", "m3"}},
		"expired lease is no one":  {"ip:198.18.3.1", nil},
		"released lease is no one": {"ip:198.18.3.2", nil},
		"declined lease is no one": {"ip:198.18.3.3", nil},
		"hostname whole":           {"hostname:web", nil},
		"hostname pattern":         {"hostname:web-*", []string{"m1", "m2"}},
		"hostname inner pattern":   {"hostname:*b-0*", []string{"m1", "m2", "m3"}},
		"id pattern":               {"id:m*", []string{"m1", "m2", "m3"}},
		"state":                    {"state:failed", []string{"m2"}},
		"state any of":             {"state:failed,provisioning", []string{"m2", "m3"}},
		"state upper case":         {"state:READY", []string{"m1"}},
		"workflow running":         {"workflow:running", []string{"m3"}},
		"workflow none":            {"workflow:none", []string{"m1", "rack2-m4"}},
		"tag":                      {"tag:gpu", []string{"m1"}},
		"tag negated":              {"-tag:gpu", []string{"m2", "m3", "rack2-m4"}},
		"tag negated with bang":    {"!tag:gpu", []string{"m2", "m3", "rack2-m4"}},
		"negated state":            {"!state:ready", []string{"m2", "m3", "rack2-m4"}},
		"negated any of":           {"-state:ready,failed", []string{"m3", "rack2-m4"}},
		"negated word":             {"-web", []string{"m3", "rack2-m4"}},
		"tag quoted with space":    {`tag:"odd tag"`, []string{"m3"}},
		"tag quoted with comma":    {`tag:"a,b"`, []string{"m3"}},
		"comma splits unquoted":    {`tag:a,b`, nil},
		"quoted word":              {`"db-01"`, []string{"m3"}},
		"escaped quote":            {`hostname:"we\"b"`, nil},
		"terms combine":            {"tag:rack1 -state:failed mac:02:00:*", []string{"m1"}},
		"nothing matches":          {"state:deprovisioning", nil},
	}
	machines, leases, workflows := fleet()
	c := machinequery.NewCompanions(leases, workflows, t0)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q, err := machinequery.Parse(tc.q)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.q, err)
			}
			if diff := cmp.Diff(tc.want, ids(machinequery.Filter(q, machines, c))); diff != "" {
				t.Errorf("Filter(%q) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

func ids(ms []*store.Machine) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		q      string
		want   machinequery.Error
		reason string // a part of Reason
	}{
		"unknown field":     {q: "state:ready stat:failed", want: machinequery.Error{Column: 13, Term: "stat:failed"}, reason: `unknown field "stat"`},
		"bad state":         {q: "state:broken", want: machinequery.Error{Column: 1, Term: "state:broken"}, reason: `"broken" is not one of discovered, ready`},
		"bad state in list": {q: "  state:ready,nope", want: machinequery.Error{Column: 3, Term: "state:ready,nope"}, reason: `"nope"`},
		"bad workflow":      {q: "workflow:done", want: machinequery.Error{Column: 1, Term: "workflow:done"}, reason: `"done" is not one of`},
		"bad mac":           {q: "mac:02:00", want: machinequery.Error{Column: 1, Term: "mac:02:00"}, reason: "not a MAC address"},
		"bad mac pattern":   {q: "mac:zz:*", want: machinequery.Error{Column: 1, Term: "mac:zz:*"}, reason: "not a MAC pattern"},
		"bad ip":            {q: "ip:198.18.1", want: machinequery.Error{Column: 1, Term: "ip:198.18.1"}, reason: "not an address"},
		"bad prefix":        {q: "ip:198.18.1.0/33", want: machinequery.Error{Column: 1, Term: "ip:198.18.1.0/33"}, reason: "not an address prefix"},
		"empty value":       {q: "tag:", want: machinequery.Error{Column: 1, Term: "tag:"}, reason: "a value is empty"},
		"empty in list":     {q: "tag:a,,b", want: machinequery.Error{Column: 1, Term: "tag:a,,b"}, reason: "a value is empty"},
		"lone negation":     {q: "web -", want: machinequery.Error{Column: 5, Term: "-"}, reason: "negates nothing"},
		"open quote":        {q: `tag:"gpu`, want: machinequery.Error{Column: 1, Term: `tag:"gpu`}, reason: "quote is not closed"},
		"empty quotes":      {q: `""`, want: machinequery.Error{Column: 1, Term: `""`}, reason: "the word is empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q, err := machinequery.Parse(tc.q)
			e, ok := err.(*machinequery.Error)
			if !ok {
				t.Fatalf("Parse(%q) = %v, %v; want an *Error", tc.q, q, err)
			}
			if !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to contain %q", e.Reason, tc.reason)
			}
			got := *e
			got.Reason = ""
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse(%q) error (-want +got):\n%s", tc.q, diff)
			}
			if !strings.Contains(e.Error(), fmt.Sprintf("%q", tc.want.Term)) {
				t.Errorf("Error() = %q does not name the term", e.Error())
			}
		})
	}
}

func TestParseTooLong(t *testing.T) {
	_, err := machinequery.Parse(strings.Repeat("a ", machinequery.MaxLen))
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("Parse of a long query = %v, want an error saying it is too long", err)
	}
}

// TestSelect reads a real store: the machines, and the leases and
// workflows only when the query needs them.
func TestSelect(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	machines, leases, workflows := fleet()
	err = db.Update(func(tx *store.Tx) error {
		w := store.Write{Index: 1, Time: t0}
		for _, m := range machines {
			if err := tx.UnsafePutMachine(m, w); err != nil {
				return err
			}
		}
		for _, l := range leases {
			if err := tx.UnsafePutLease(l, nil, w); err != nil {
				return err
			}
		}
		for _, wf := range workflows {
			if err := tx.UnsafePut(wf, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string][]string{
		"ip:198.18.2.0/24 -workflow:failed": {"m3"},
		"tag:rack1":                         {"m1", "m2"},
		"workflow:failed,running":           {"m2", "m3"},
	} {
		parsed, err := machinequery.Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		var got []*store.Machine
		if err := db.View(func(tx *store.Tx) (err error) { got, err = machinequery.Select(tx, parsed, t0); return err }); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, ids(got)); diff != "" {
			t.Errorf("Select(%q) (-want +got):\n%s", q, diff)
		}
	}
}
