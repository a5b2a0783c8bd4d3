package cli_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/cli"
	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/testcentral"
	"github.com/outposthq/outpost/internal/testwait"
)

// startFleet is a fake central's fleet with four machines on two sites
// (pages of two), one machine's timeline, two sites and an audit.
func startFleet(t *testing.T) *testcentral.Fleet {
	f := testcentral.StartFleet(t)
	at := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	f.Set(
		&testcentral.Machine{Site: "ams-1", ID: "m1", State: "failed", Reason: "disk wipe failed", Power: "on"},
		&testcentral.Machine{Site: "fra-1", ID: "m1", Hostname: "web-1", State: "provisioning", MACs: []string{"52:54:00:00:00:01"},
			LastOrder: &testcentral.Order{Key: "o1", Action: "provision", Image: "debian-12", ImageSHA256: "sha256:0123456789abcdef", By: "ops", Status: "running"},
			Workflow:  &testcentral.Workflow{ID: "w1", Status: "running", Step: "write", Done: 1, Total: 3, Progress: "40%"}},
		&testcentral.Machine{Site: "fra-1", ID: "m2", State: "ready"},
		&testcentral.Machine{Site: "fra-1", ID: "m3", State: "ready"},
	)
	f.SetTimeline("fra-1", "m1",
		testcentral.Event{Source: "site", Seq: 12, Time: at.Add(time.Minute), Kind: "workflow.action", Message: "write started"},
		testcentral.Event{Source: "central", Seq: 3, Time: at, Kind: "order.placed", By: "ops", Message: "provision debian-12"})
	f.SetSites(&testcentral.Site{ID: "ams-1", Link: testcentral.Link{Connected: false, Revision: 4, AckedRevision: 2}},
		&testcentral.Site{ID: "fra-1", Name: "Frankfurt", Labels: map[string]string{"region": "eu"}, Link: testcentral.Link{Connected: true, Revision: 9, AckedRevision: 9},
			Appliance: testcentral.Appliance{Version: "v1.4.0", Nodes: 3, Healthy: 3}, Machines: map[string]int{"ready": 2, "provisioning": 1}})
	f.AddAudit(testcentral.AuditEntry{Seq: 1, Time: at, By: "admin", Role: "admin", From: "127.0.0.1", Action: "site.create", Target: "fra-1", Status: 201},
		testcentral.AuditEntry{Seq: 2, Time: at, By: "ops", Role: "operator", From: "127.0.0.1", Action: "order.place", Target: "fra-1/m1", Detail: "provision debian-12", Status: 200})
	return f
}

func fleetRun(t *testing.T, f *testcentral.Fleet, args ...string) result {
	t.Helper()
	return runCLI(t, "", append([]string{"--central", f.URL, "--token", "t"}, args...)...)
}

// get's commands at central that read the fleet and the audit, against
// the fake: tables (every page), wide tables, JSON, filters.
func TestFleetGet(t *testing.T) {
	parallel(t)
	f := startFleet(t)
	for name, tc := range map[string]struct {
		args []string
		rows [][]string // the table's rows, header included (compared field by field)
		want []string   // or: lines stdout has
		code int
		err  string
	}{
		"machines": {args: []string{"get", "machines"}, rows: [][]string{
			{"SITE", "ID", "HOSTNAME", "STATE", "ORDER", "STATUS", "STEP"},
			{"ams-1", "m1", "-", "failed", "-", "-", "-"},
			{"fra-1", "m1", "web-1", "provisioning", "provision", "o1", "running", "write", "(1/3)", "40%"},
			{"fra-1", "m2", "-", "ready", "-", "-", "-"},
			{"fra-1", "m3", "-", "ready", "-", "-", "-"},
		}},
		"query":   {args: []string{"get", "machines", "-q", "state:failed"}, rows: [][]string{fleetHeader, {"ams-1", "m1", "-", "failed", "-", "-", "-"}}},
		"site":    {args: []string{"get", "machines", "--site", "fra-1", "-q", "state:ready"}, rows: [][]string{fleetHeader, {"fra-1", "m2", "-", "ready", "-", "-", "-"}, {"fra-1", "m3", "-", "ready", "-", "-", "-"}}},
		"bad q":   {args: []string{"get", "machines", "-q", "color:red"}, code: 1, err: `unknown term "color:red"`},
		"q other": {args: []string{"get", "orders", "-q", "state:ready"}, code: 2, err: "-q is a search of the fleet's machines"},
		"wide": {args: []string{"get", "machines", "-q", "site:ams-1", "-o", "wide"}, rows: [][]string{
			{"SITE", "ID", "HOSTNAME", "STATE", "ORDER", "STATUS", "STEP", "POWER", "MACS", "TAGS", "REASON", "UPDATED"},
			{"ams-1", "m1", "-", "failed", "-", "-", "-", "on", "-", "-", "disk", "wipe", "failed", "-"},
		}},
		"machine": {args: []string{"get", "machine", "fra-1/m1"}, want: []string{
			"order o1: provision debian-12 (0123456789ab) by ops, running",
			"2026-12-07T06:01:00Z  site     12   workflow.action  -    write started",
			"2026-12-07T06:00:00Z  central  3    order.placed     ops  provision debian-12",
		}},
		// One event: BY is as wide as its header (no event by ops).
		"timeline limit": {args: []string{"get", "machine", "fra-1/m1", "--limit", "1"}, want: []string{
			"TIME                  SOURCE  SEQ  KIND             BY  MESSAGE", "2026-12-07T06:01:00Z  site    12   workflow.action  -   write started",
		}},
		"unknown machine": {args: []string{"get", "machine", "fra-1/m9"}, code: 1, err: "HTTP 404"},
		"sites": {args: []string{"get", "sites", "-o", "wide"}, rows: [][]string{
			{"ID", "NAME", "CONNECTED", "LAST_SEEN", "REVISION", "ACKED", "BEHIND", "VERSION", "MACHINES", "LABELS", "NODES", "HEALTHY", "PROBLEMS"},
			{"ams-1", "-", "no", "-", "4", "2", "0", "-", "-", "-", "0", "0", "-"},
			{"fra-1", "Frankfurt", "yes", "-", "9", "9", "0", "v1.4.0", "provisioning=1,ready=2", "region=eu", "3", "3", "-"},
		}},
		"audit": {args: []string{"get", "audit", "--by", "ops"}, rows: [][]string{
			{"SEQ", "TIME", "BY", "ROLE", "FROM", "ACTION", "TARGET", "STATUS"},
			{"2", "2026-12-07T06:00:00Z", "ops", "operator", "127.0.0.1", "order.place", "fra-1/m1", "200"},
		}},
		"audit csv":    {args: []string{"get", "audit", "--format", "csv"}, want: []string{"seq,time,by,action,target,status", "2,2026-12-07T06:00:00Z,ops,order.place,fra-1/m1,200"}},
		"audit format": {args: []string{"get", "audit", "--format", "xml"}, code: 2, err: `--format "xml": want jsonl or csv`},
		"audit since":  {args: []string{"get", "audit", "--since", "yesterday"}, code: 2, err: `--since "yesterday"`},
	} {
		t.Run(name, func(t *testing.T) {
			r := fleetRun(t, f, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.err) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.err)
			}
			if tc.rows != nil && !slices.EqualFunc(table(r.stdout), tc.rows, slices.Equal) {
				t.Errorf("table:\n%s\nwant rows %q", r.stdout, tc.rows)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w+"\n") {
					t.Errorf("stdout:\n%s\nwant a line %q", r.stdout, w)
				}
			}
		})
	}
}

var fleetHeader = []string{"SITE", "ID", "HOSTNAME", "STATE", "ORDER", "STATUS", "STEP"}

// -o json and yaml print central's objects: every machine of every page;
// one machine with its timeline; the audit's entries.
func TestFleetGetJSON(t *testing.T) {
	parallel(t)
	f := startFleet(t)
	var ms []client.Machine
	if err := json.Unmarshal([]byte(mustOK(t, fleetRun(t, f, "get", "machines", "-o", "json"))), &ms); err != nil || len(ms) != 4 || ms[1].LastOrder.Key != "o1" {
		t.Errorf("get machines -o json: %+v, %v", ms, err)
	}
	var one struct {
		client.Machine
		Timeline []client.Event
	}
	if err := json.Unmarshal([]byte(mustOK(t, fleetRun(t, f, "get", "machine", "fra-1/m1", "-o", "json"))), &one); err != nil || one.ID != "m1" || len(one.Timeline) != 2 {
		t.Errorf("get machine -o json: %+v, %v", one, err)
	}
	if y := mustOK(t, fleetRun(t, f, "get", "audit", "-o", "yaml", "--action", "site.create")); !strings.Contains(y, "action: site.create") || strings.Contains(y, "order.place") {
		t.Errorf("get audit -o yaml --action site.create:\n%s", y)
	}
}

// watch machines at central prints the machines the query matches, then
// each one whose state, order or step changes (and no other), and goes
// on through a stream central ends, resuming from the last version.
func TestFleetWatch(t *testing.T) {
	parallel(t)
	f := startFleet(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	args := []string{"--central", f.URL, "--token", "t", "watch", "machines", "-q", "site:fra-1"}
	go func() { done <- cli.Run(ctx, args, strings.NewReader(""), &stdout, &stderr) }()
	shows := func(s string) func() bool { return func() bool { return strings.Contains(stdout.String(), s) } }
	testwait.For(t, "the machines at the start", 30*time.Second, shows("fra-1 m3 - ready"))
	testwait.For(t, "a stream", 30*time.Second, func() bool { return len(f.Resumes()) == 1 })

	f.Set(&testcentral.Machine{Site: "fra-1", ID: "m2", State: "provisioning", LastOrder: &testcentral.Order{Key: "o2", Action: "provision", Status: "delivered"}},
		&testcentral.Machine{Site: "ams-1", ID: "m1", State: "ready"})
	testwait.For(t, "m2 changed", 30*time.Second, shows("fra-1 m2 - provisioning provision_o2 delivered -"))
	f.DropStreams()
	testwait.For(t, "the stream resumed", 30*time.Second, func() bool { return len(f.Resumes()) == 2 })
	f.Set(&testcentral.Machine{Site: "fra-1", ID: "m3", State: "failed", Reason: "no disk"})
	testwait.For(t, "m3 changed", 30*time.Second, shows("fra-1 m3 - failed - - -"))
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("watch, interrupted: exit %d: %s", code, stderr.String())
	}
	got := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := []string{
		"SITE ID HOSTNAME STATE ORDER STATUS STEP",
		"fra-1 m1 web-1 provisioning provision_o1 running write_(1/3)_40%",
		"fra-1 m2 - ready - - -",
		"fra-1 m3 - ready - - -",
		"fra-1 m2 - provisioning provision_o2 delivered -",
		"fra-1 m3 - failed - - -",
	}
	if !slices.Equal(got, want) {
		t.Errorf("watch printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := f.Resumes(); r[1] != "2" {
		t.Errorf("the stream resumed from Last-Event-ID %q, want 2 (the last version seen)", r[1])
	}
}
