package orders

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

var t0 = time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)

// fakeFleet is a fleet.Reader over a fixed list of machines: a query is
// a site id (or site:* for all), answered in pages of two whatever the
// limit, so that paging is exercised.
type fakeFleet struct {
	machines []*fleet.Machine
	sites    []*fleet.Site
	bad      string // a query term it cannot read
}

func (f *fakeFleet) Machines(q string, limit int, after string) (*fleet.Page, error) {
	if f.bad != "" && strings.Contains(q, f.bad) {
		return nil, fmt.Errorf("term %q: unknown field", f.bad)
	}
	var match []*fleet.Machine
	for _, m := range f.machines {
		if q == "site:*" || m.Site == q {
			match = append(match, m)
		}
	}
	p := &fleet.Page{Total: len(match)}
	for _, m := range match {
		if k := m.Site + "/" + m.ID; k > after && len(p.Machines) < 2 {
			p.Machines = append(p.Machines, m)
		}
	}
	if n := len(p.Machines); n > 0 {
		last := p.Machines[n-1]
		if last != match[len(match)-1] {
			p.Next = last.Site + "/" + last.ID
		}
	}
	return p, nil
}

func (f *fakeFleet) Machine(site, id string) (*fleet.Machine, error) {
	for _, m := range f.machines {
		if m.Site == site && m.ID == id {
			return m, nil
		}
	}
	return nil, errs.NotFound("machine", site+"/"+id)
}

func (f *fakeFleet) Timeline(string, string, int) ([]fleet.Event, error) { return nil, nil }
func (f *fakeFleet) Sites() ([]*fleet.Site, error)                       { return f.sites, nil }
func (f *fakeFleet) Summary(time.Time) (*fleet.Summary, error)           { return &fleet.Summary{}, nil }
func (f *fakeFleet) Version() uint64                                     { return 1 }
func (f *fakeFleet) Changed() <-chan struct{}                            { return nil }

var (
	digA = strings.Repeat("a1", 32)
	digB = strings.Repeat("b2", 32)
)

// testService is a Service over a real store with sites s1 (connected)
// and s2 (offline): s1 is given image debian-12 as digA, s2 as digB; s3
// exists in the fleet only. Machines: s1/m1, s1/m2 (an order running),
// s2/m3, s3/m4.
func testService(t *testing.T) (*Service, *store.DB) {
	t.Helper()
	db := openStore(t)
	for _, s := range []string{"s1", "s2"} {
		if _, err := db.CreateSite(s, "", store.HashSecret("x")); err != nil {
			t.Fatal(err)
		}
	}
	for site, dig := range map[string]string{"s1": digA, "s2": digB} {
		img := fmt.Sprintf(`{"name":"debian-12","url":"http://mirror.example/debian.img","sha256":%q}`, dig)
		if _, err := db.PutDesired(site, store.KindImage, "debian-12", json.RawMessage(img)); err != nil {
			t.Fatal(err)
		}
	}
	f := &fakeFleet{
		machines: []*fleet.Machine{
			{Site: "s1", ID: "m1", Hostname: "web-1", State: "ready"},
			{Site: "s1", ID: "m2", State: "provisioning", LastOrder: &fleet.Order{Key: "o9", Status: fleet.OrderRunning}},
			{Site: "s2", ID: "m3", State: "ready", LastOrder: &fleet.Order{Key: "o8", Status: fleet.OrderSucceeded}},
			{Site: "s3", ID: "m4", State: "ready"},
		},
		sites: []*fleet.Site{
			{ID: "s1", Link: fleet.Link{Connected: true}},
			{ID: "s2"},
		},
		bad: "color:",
	}
	n := 0
	draw := func() string { n++; return fmt.Sprintf("c0ffee%02d", n) }
	return New(Config{Store: db, Fleet: f, Now: func() time.Time { return t0 }, Rand: draw}), db
}

// openStore opens a store in a temporary directory.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPreview(t *testing.T) {
	svc, _ := testService(t)
	ssh := []string{"ssh-ed25519 AAAA alice"}
	tests := map[string]struct {
		req  Request
		want *Preview
		err  string // the field of the error
	}{
		"power cycle by query, across pages": {
			req: Request{Action: ActionPower, Query: "site:*", Params: OrderParams{Power: "cycle"}},
			want: &Preview{Action: ActionPower, Refused: 2, Items: []PreviewItem{
				{TargetRef: TargetRef{"s1", "m1"}, Hostname: "web-1", State: "ready", Will: "power cycle"},
				{TargetRef: TargetRef{"s1", "m2"}, State: "provisioning", Will: "power cycle", Problem: "order o9 is still running for this machine: wait for it to end"},
				{TargetRef: TargetRef{"s2", "m3"}, State: "ready", Offline: true, Will: "power cycle; site s2 is offline: the order will be delivered when the site returns"},
				{TargetRef: TargetRef{"s3", "m4"}, Problem: `no site "s3"`},
			}},
		},
		"provision by targets, each site's digest": {
			req: Request{Action: ActionProvision, Targets: []TargetRef{{"s1", "m1"}, {"s2", "m3"}, {"s1", "m7"}},
				Params: OrderParams{Image: "debian-12", SSHKeys: ssh, UserData: "#cloud-config\n"}},
			want: &Preview{Action: ActionProvision, Refused: 1, ImageSHA256: digA, Items: []PreviewItem{
				{TargetRef: TargetRef{"s1", "m1"}, Hostname: "web-1", State: "ready", Will: "install debian-12 (sha256:a1a1a1a1a1a1…), 1 SSH key, user data (14 bytes)"},
				{TargetRef: TargetRef{"s2", "m3"}, State: "ready", Offline: true,
					Will: "install debian-12 (sha256:b2b2b2b2b2b2…), 1 SSH key, user data (14 bytes); site s2 is offline: the order will be delivered when the site returns"},
				{TargetRef: TargetRef{"s1", "m7"}, Offline: false, Problem: `site s1 has no machine "m7"`},
			}},
		},
		"an image the site is not given": {
			req: Request{Action: ActionProvision, Query: "s1", Params: OrderParams{Image: "fedora"}},
			want: &Preview{Action: ActionProvision, Refused: 2, Items: []PreviewItem{
				{TargetRef: TargetRef{"s1", "m1"}, Hostname: "web-1", State: "ready", Problem: "image fedora is not given to site s1: place it there first (the catalogue's placement, or the site's images)"},
				{TargetRef: TargetRef{"s1", "m2"}, State: "provisioning", Problem: "image fedora is not given to site s1: place it there first (the catalogue's placement, or the site's images)"},
			}},
		},
		"a provision without image": {
			req: Request{Action: ActionProvision, Targets: []TargetRef{{"s1", "m1"}}},
			want: &Preview{Action: ActionProvision, Refused: 1, Items: []PreviewItem{
				{TargetRef: TargetRef{"s1", "m1"}, Hostname: "web-1", State: "ready", Problem: "a provision names the image to install"},
			}},
		},
		"a hostname for many":    {req: Request{Action: ActionProvision, Query: "s1", Params: OrderParams{Image: "debian-12", Hostname: "x"}}, err: "params.hostname"},
		"no action":              {req: Request{}, err: "action"},
		"power without power":    {req: Request{Action: ActionPower}, err: "params.power"},
		"power with an image":    {req: Request{Action: ActionPower, Params: OrderParams{Power: "on", Image: "x"}}, err: "params"},
		"query and targets":      {req: Request{Action: ActionDeprovision, Query: "s1", Targets: []TargetRef{{"s1", "m1"}}}, err: "targets"},
		"a machine twice":        {req: Request{Action: ActionDeprovision, Targets: []TargetRef{{"s1", "m1"}, {"s1", "m1"}}}, err: "targets[1]"},
		"a query it cannot read": {req: Request{Action: ActionDeprovision, Query: "color:red"}, err: "query"},
		"a key with a line break": {req: Request{Action: ActionProvision, Query: "s1", Params: OrderParams{Image: "debian-12", SSHKeys: []string{"a\nb"}}},
			err: "params.ssh_keys[0]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := svc.Preview(t.Context(), &tc.req)
			if tc.err != "" {
				if e, ok := errs.AsError(err); !ok || e.Field != tc.err {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("preview (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlace: a bulk request places its machines' orders under one batch
// prefix, one revision per site, by the caller, with its audit entry in
// the same apply; refused machines are not placed; the orders carry the
// digest each site's image resolved to and the values the metadata
// shows.
func TestPlace(t *testing.T) {
	svc, db := testService(t)
	req := &Request{Action: ActionProvision, Targets: []TargetRef{{"s1", "m1"}, {"s2", "m3"}, {"s1", "m2"}},
		Params: OrderParams{Image: "debian-12", SSHKeys: []string{"ssh-ed25519 AAAA alice", "ssh-ed25519 BBBB bob"}, UserData: "#cloud-config\npassword: SECRET-UD\n"}}
	res, err := svc.Place(t.Context(), "alice", "192.0.2.7", req)
	if err != nil {
		t.Fatal(err)
	}
	wantPlaced := []Placed{
		{TargetRef: TargetRef{"s1", "m1"}, Order: "b1796623200-c0ffee01-1", Revision: 2},
		{TargetRef: TargetRef{"s2", "m3"}, Order: "b1796623200-c0ffee01-2", Revision: 2, Offline: true},
	}
	if diff := cmp.Diff(wantPlaced, res.Placed); diff != "" || res.Batch != "b1796623200-c0ffee01" || len(res.Refused) != 1 || res.Refused[0].Machine != "m2" {
		t.Fatalf("result %+v (-want +got placed):\n%s", res, diff)
	}
	raw, err := db.Desired("s2", store.KindOrder, "b1796623200-c0ffee01-2")
	if err != nil {
		t.Fatal(err)
	}
	var o syncproto.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	want := syncproto.Order{ID: "b1796623200-c0ffee01-2", Action: "provision", MachineID: "m3", Image: "debian-12", ImageSHA256: digB,
		Values: map[string]string{"ssh_keys": "ssh-ed25519 AAAA alice\nssh-ed25519 BBBB bob", "user_data": "#cloud-config\npassword: SECRET-UD\n"}}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("order at s2 (-want +got):\n%s", diff)
	}
	revs, err := db.NextRevisions("s1", 1, 10)
	if err != nil || len(revs) != 1 || revs[0].By != "alice" {
		t.Errorf("s1's revisions: %+v, %v", revs, err)
	}
	entries, err := svc.Audit(AuditFilter{})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit %+v, %v", entries, err)
	}
	e := entries[0]
	if e.By != "alice" || e.From != "192.0.2.7" || e.Action != "order.place" || e.Target != res.Batch || e.Status != 200 ||
		e.Detail != "install debian-12, 2 SSH keys, user data (34 bytes): 2 placed, 1 refused" {
		t.Errorf("audit entry %+v", e)
	}
	if err := svc.Record(AuditEntry{By: "alice", Role: "operator", Action: "portal.signin", Status: 303}); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Audit(AuditFilter{Action: "portal.*"}); len(got) != 1 || got[0].Seq != 2 || got[0].Time.IsZero() {
		t.Errorf("the portal's entry: %+v", got)
	}
	if j, _ := json.Marshal(entries); strings.Contains(string(j), "SECRET-UD") || strings.Contains(string(j), "AAAA") {
		t.Errorf("the audit shows the user data or a key: %s", j)
	}

	// Power orders by query, where nothing can be placed: refused, and
	// still audited.
	res, err = svc.Place(t.Context(), "bob", "", &Request{Action: ActionPower, Query: "s1", Params: OrderParams{Power: "off"}})
	if err != nil || len(res.Placed) != 1 || res.Placed[0].Order != "b1796623200-c0ffee02-1" || res.Placed[0].Machine != "m1" {
		t.Errorf("power off of s1: %+v, %v", res, err)
	}
}

// TestPlaceChunks: a request larger than one apply's chunk is placed in
// several, its audit entry with the first; every order is placed once.
func TestPlaceChunks(t *testing.T) {
	svc, db := testService(t)
	f := svc.fleet.(*fakeFleet)
	f.machines = nil
	var targets []TargetRef
	for i := range chunk + 3 {
		id := fmt.Sprintf("n%04d", i)
		f.machines = append(f.machines, &fleet.Machine{Site: "s1", ID: id})
		targets = append(targets, TargetRef{"s1", id})
	}
	res, err := svc.Place(t.Context(), "ops", "", &Request{Action: ActionPower, Targets: targets, Params: OrderParams{Power: "on"}})
	if err != nil || len(res.Placed) != chunk+3 {
		t.Fatalf("placed %d, %v", len(res.Placed), err)
	}
	if first, last := res.Placed[0].Revision, res.Placed[chunk+2].Revision; first != 2 || last != 3 {
		t.Errorf("revisions %d and %d, want 2 then 3", first, last)
	}
	items, _ := db.ListDesired("s1", store.KindOrder)
	if entries, _ := svc.Audit(AuditFilter{}); len(items) != chunk+3 || len(entries) != 1 {
		t.Errorf("%d orders, %d audit entries", len(items), len(entries))
	}
}

// TestChunkEnd: an apply holds at most chunk orders of at most
// chunkBytes, and at least one order however large.
func TestChunkEnd(t *testing.T) {
	of := func(sizes ...int) []store.OrderToPlace {
		out := make([]store.OrderToPlace, len(sizes))
		for i, n := range sizes {
			out[i].Object = make(json.RawMessage, n)
		}
		return out
	}
	big := chunkBytes/2 + 1
	tests := map[string]struct {
		todo       []store.OrderToPlace
		start, end int
	}{
		"small ones":      {of(10, 10, 10), 0, 3},
		"bytes bound":     {of(big, big, big), 0, 1},
		"from the middle": {of(big, big, 10), 1, 3},
		"one too large":   {of(chunkBytes+1, 10), 0, 1},
		"count bound":     {make([]store.OrderToPlace, chunk+5), 0, chunk},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := chunkEnd(tc.todo, tc.start); got != tc.end {
				t.Errorf("chunkEnd from %d = %d, want %d", tc.start, got, tc.end)
			}
		})
	}
}
