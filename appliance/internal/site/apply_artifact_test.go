package site

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// t1h is an hour after t0.
var t1h = t0.Add(time.Hour)

// Digests of the artifacts these tests point images at.
var (
	shaA = strings.Repeat("a1", 32)
	shaB = strings.Repeat("b2", 32)
	shaK = strings.Repeat("c3", 32)
	shaI = strings.Repeat("d4", 32)
)

// casImage is an OS image that is its sha256 alone.
func casImage(name, sha string, size uint64) *store.Image {
	return &store.Image{Name: name, Type: store.ImageOS, SHA256: sha, Size: size, Format: "raw"}
}

// casInstaller is an installer whose kernel and initrd are artifacts.
func casInstaller(name string) *store.Image {
	return &store.Image{Name: name, Type: store.ImageInstaller, Kernel: "sha256:" + shaK, Initrd: "SHA256:" + strings.ToUpper(shaI)}
}

func artifacts(t *testing.T, e *env) []*store.Artifact {
	t.Helper()
	var out []*store.Artifact
	e.view(func(tx *store.Tx) (err error) { out, err = store.List[store.Artifact](tx); return err })
	return out
}

func artifactOf(t *testing.T, e *env, sha string) *store.Artifact {
	t.Helper()
	var a *store.Artifact
	e.view(func(tx *store.Tx) error { a, _ = store.Get[store.Artifact](tx, sha); return nil })
	return a
}

// lastEvent is the newest event.
func lastEvent(t *testing.T, e *env) store.Event {
	t.Helper()
	var last store.Event
	e.view(func(tx *store.Tx) error {
		return tx.EventsBefore(0, 0, func(ev *store.Event) bool { last = *ev; return false })
	})
	return last
}

var ignoreMeta = cmpopts.IgnoreFields(store.Artifact{}, "Meta")

// TestArtifactRecordsFollowImages: every command that puts or deletes
// images reconciles the records at its time: a digest newly pointed at
// gets a record no node holds; one no image points at is unreferenced
// from then (deleted if no node holds it); one pointed at again is
// referenced again; an installer's "sha256:" kernel and initrd count, and
// so does an image that is a file of the artifact directory.
func TestArtifactRecordsFollowImages(t *testing.T) {
	ts := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	file := &store.Image{Name: "f", Type: store.ImageOS, File: "f.raw", SHA256: shaB, Format: "raw"}
	steps := []struct {
		name string
		typ  Type
		body any
		want []*store.Artifact
	}{
		{"put a", PutImage, Put[store.Image]{Object: casImage("a", shaA, 10), Time: ts(1)}, []*store.Artifact{
			{SHA256: shaA, Size: 10, Names: []string{"a"}, NeededSince: ts(1)}}},
		{"put b, the same digest", PutImage, Put[store.Image]{Object: casImage("b", shaA, 10), Time: ts(2)}, []*store.Artifact{
			{SHA256: shaA, Size: 10, Names: []string{"a", "b"}, NeededSince: ts(1)}}},
		{"put a file image and an installer", PutImage, Put[store.Image]{Object: file, Time: ts(3)}, []*store.Artifact{
			{SHA256: shaA, Size: 10, Names: []string{"a", "b"}, NeededSince: ts(1)},
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)}}},
		{"installer", PutImage, Put[store.Image]{Object: casInstaller("inst"), Time: ts(4)}, []*store.Artifact{
			{SHA256: shaA, Size: 10, Names: []string{"a", "b"}, NeededSince: ts(1)},
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)},
			{SHA256: shaK, Names: []string{"inst"}, NeededSince: ts(4)},
			{SHA256: shaI, Names: []string{"inst"}, NeededSince: ts(4)}}},
		{"delete a", DeleteImage, Delete{Key: "a", Time: ts(5)}, []*store.Artifact{
			{SHA256: shaA, Size: 10, Names: []string{"b"}, NeededSince: ts(1)},
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)},
			{SHA256: shaK, Names: []string{"inst"}, NeededSince: ts(4)},
			{SHA256: shaI, Names: []string{"inst"}, NeededSince: ts(4)}}},
		{"n1 holds the kernel", RecordArtifact, ArtifactHeld{Node: "n1", SHA256: shaK, Size: 7, Time: ts(6)}, []*store.Artifact{
			{SHA256: shaA, Size: 10, Names: []string{"b"}, NeededSince: ts(1)},
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)},
			{SHA256: shaK, Size: 7, Names: []string{"inst"}, NeededSince: ts(4), Nodes: map[string]time.Time{"n1": ts(6)}},
			{SHA256: shaI, Names: []string{"inst"}, NeededSince: ts(4)}}},
		{"delete b and the installer", DeleteImage, Delete{Key: "inst", Time: ts(7)}, []*store.Artifact{
			{SHA256: shaA, Size: 10, Names: []string{"b"}, NeededSince: ts(1)},
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)},
			{SHA256: shaK, Size: 7, NeededSince: ts(4), UnreferencedSince: ts(7), Nodes: map[string]time.Time{"n1": ts(6)}}}},
		{"delete b", DeleteImage, Delete{Key: "b", Time: ts(8)}, []*store.Artifact{
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)},
			{SHA256: shaK, Size: 7, NeededSince: ts(4), UnreferencedSince: ts(7), Nodes: map[string]time.Time{"n1": ts(6)}}}},
		{"the installer again, by central", ApplyDesired, DesiredPayload{Desired: Desired{Revision: 1, Changes: []DesiredChange{
			putChange(t, DesiredImage, "inst", casInstaller("inst"))}}, Time: ts(9)}, []*store.Artifact{
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)},
			{SHA256: shaK, Size: 7, Names: []string{"inst"}, NeededSince: ts(9), Nodes: map[string]time.Time{"n1": ts(6)}},
			{SHA256: shaI, Names: []string{"inst"}, NeededSince: ts(9)}}},
		{"central deletes it", ApplyDesired, DesiredPayload{Desired: Desired{Revision: 2, Changes: []DesiredChange{
			{Kind: DesiredImage, Key: "inst", Deleted: true}}}, Time: ts(10)}, []*store.Artifact{
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)},
			{SHA256: shaK, Size: 7, NeededSince: ts(9), UnreferencedSince: ts(10), Nodes: map[string]time.Time{"n1": ts(6)}}}},
		{"n1 removes the kernel", ForgetArtifact, ArtifactHeld{Node: "n1", SHA256: shaK, Time: ts(11)}, []*store.Artifact{
			{SHA256: shaB, Names: []string{"f"}, NeededSince: ts(3)}}},
	}
	e := newEnv(t)
	for i, s := range steps {
		e.applyOK(uint64(i+1), s.typ, s.body)
		got := artifacts(t, e)
		want := s.want
		byDigest := func(a, b *store.Artifact) bool { return a.SHA256 < b.SHA256 }
		if diff := cmp.Diff(want, got, ignoreMeta, cmpopts.SortSlices(byDigest), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("after %s: records (-want +got):\n%s", s.name, diff)
		}
	}
}

// TestRecordArtifact: the first node to hold a referenced digest makes
// it present (one event naming the images), each later node copies it
// (one event each), a node recorded already changes nothing, and what
// the site refuses changes nothing.
func TestRecordArtifact(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutImage, Put[store.Image]{Object: casImage("debian-12", shaA, 1<<30), Time: t0})
	e.applyOK(2, RecordArtifact, ArtifactHeld{Node: "n1", SHA256: shaA, Size: 1 << 30, Time: t0, By: ActorArtifacts})
	ev := lastEvent(t, e)
	if ev.Kind != "artifact.present" || ev.By != ActorArtifacts || ev.Fields["images"] != "debian-12" || ev.Fields["node"] != "n1" ||
		!strings.Contains(ev.Message, "debian-12") || !strings.Contains(ev.Message, "1.0 GiB") {
		t.Errorf("first holder's event: %+v", ev)
	}
	e.applyOK(3, RecordArtifact, ArtifactHeld{Node: "n2", SHA256: shaA, Size: 1 << 30, Time: t1h})
	if ev := lastEvent(t, e); ev.Kind != "artifact.copied" || ev.Fields["node"] != "n2" || ev.Fields["nodes"] != "2" {
		t.Errorf("second holder's event: %+v", ev)
	}
	before := rawDump(t, e.db)
	i := uint64(3)
	i++
	if r := e.applyOK(i, RecordArtifact, ArtifactHeld{Node: "n2", SHA256: shaA, Size: 1 << 30, Time: t1h.Add(time.Hour)}); r.Err != nil {
		t.Fatal(r.Err)
	}
	for name, tc := range map[string]struct {
		req  ArtifactHeld
		code string
		want string
	}{
		"no image points at it": {ArtifactHeld{Node: "n3", SHA256: shaB, Time: t1h}, errs.CodeConflict, "no image points at"},
		"not a digest":          {ArtifactHeld{Node: "n3", SHA256: "abc", Time: t1h}, errs.CodeInvalid, "sha256"},
		"upper case":            {ArtifactHeld{Node: "n3", SHA256: strings.ToUpper(shaA), Time: t1h}, errs.CodeInvalid, "sha256"},
		"other size":            {ArtifactHeld{Node: "n3", SHA256: shaA, Size: 5, Time: t1h}, errs.CodeInvalid, "size_bytes"},
		"no node":               {ArtifactHeld{SHA256: shaA, Time: t1h}, errs.CodeInvalid, "node"},
	} {
		i++
		r := e.applyCmd(i, RecordArtifact, tc.req)
		if r.Err == nil || r.Err.Code != tc.code || !strings.Contains(r.Err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s naming %s", name, r.Err, tc.code, tc.want)
		}
	}
	i++
	if r := e.applyCmd(i, ForgetArtifact, ArtifactHeld{Node: "n9", SHA256: shaA, Time: t1h}); r.Err != nil {
		t.Errorf("forget what n9 never held: %v", r.Err)
	}
	i++
	if r := e.applyCmd(i, ReportArtifact, ArtifactReport{Node: "n1", SHA256: shaB, Kind: ArtifactPulling, Source: "central", Time: t1h}); errCode(r) != errs.CodeConflict {
		t.Errorf("report of a digest no image points at: %v, want a conflict", r.Err)
	}
	i++
	if r := e.applyCmd(i, ReportArtifact, ArtifactReport{Node: "n1", SHA256: shaA, Kind: "done", Source: "central", Time: t1h}); errCode(r) != errs.CodeInvalid {
		t.Errorf("report of an unknown kind: %v, want invalid", r.Err)
	}
	i++
	if r := e.applyCmd(i, ReportArtifact, ArtifactReport{Node: "n1", SHA256: shaA, Kind: ArtifactPulling, Source: "central", Held: 5, Time: t1h}); r.Err != nil {
		t.Errorf("progress of a present artifact: %v, want ignored", r.Err)
	}
	if diff := cmp.Diff(withApplied(before, i), rawDump(t, e.db)); diff != "" {
		t.Errorf("repeated, refused and stale commands changed the store (-before +after):\n%s", diff)
	}
}

// waitSite is orderSite with image ubuntu, which no node holds, and a
// second machine m2, at indexes 7 and 8.
func waitSite(t *testing.T) *env {
	t.Helper()
	e := orderSite(t)
	e.applyOK(7, PutImage, Put[store.Image]{Object: casImage("ubuntu", shaA, 1<<30), Time: t0})
	e.applyOK(8, PutMachine, Put[store.Machine]{Object: sampleMachine("m2", "aa:bb:cc:00:00:02"), Time: t0})
	return e
}

func provisionOf(id, machine, image string) *store.Order {
	return &store.Order{ID: id, Action: store.OrderProvision, MachineID: machine, Template: "install", Image: image, Nonce: "n-" + id}
}

// workflowExists reports whether workflow id exists.
func workflowExists(t *testing.T, e *env, id string) bool {
	t.Helper()
	ok := false
	e.view(func(tx *store.Tx) error { _, err := store.Get[store.Workflow](tx, id); ok = err == nil; return nil })
	return ok
}

// TestOrderWaitsForItsArtifact: a provision order for an image no node
// holds is stored waiting, saying which image and digest and how its
// pull goes, with nothing else (no workflow, job or address); a power
// order does not wait. When the first node holds the artifact, the
// waiting orders start in the order they were placed, as PlaceOrder
// would have started them.
func TestOrderWaitsForItsArtifact(t *testing.T) {
	e := waitSite(t)
	o1 := placeOrder(t, e, PlaceOrder, 10, provisionOf("o1", "m1", "ubuntu"))
	if o1.State != store.OrderWaiting || o1.Workflow != "" || len(o1.Jobs) != 0 || o1.ImageSHA256 != shaA ||
		!cmp.Equal(o1.WaitingFor, []string{shaA}) ||
		o1.Reason != "image ubuntu (sha256:a1a1a1a1a1a1…, 1.0 GiB) is not at the site yet: waiting for the leader to pull it" {
		t.Fatalf("order = %+v, want waiting for ubuntu alone", o1)
	}
	if ev := lastEvent(t, e); ev.Kind != "order.waiting" || ev.MachineID != "m1" || ev.Fields["sha256"] != shaA || !strings.Contains(ev.Message, o1.Reason) {
		t.Errorf("event %+v, want order.waiting with the reason", ev)
	}
	if workflowExists(t, e, "o1") || machineOf(t, e, "m1").Interfaces[0].IP != "" {
		t.Error("a waiting order has a workflow or an address")
	}
	placeOrder(t, e, PlaceOrder, 11, provisionOf("o2", "m2", "ubuntu"))
	if o := placeOrder(t, e, PlaceOrder, 12, &store.Order{ID: "p1", Action: store.OrderPowerOn, MachineID: "m1"}); o.State != store.OrderRunning {
		t.Errorf("power order %s, want running: it needs no artifact", o.State)
	}
	e.applyOK(14, ReportArtifact, ArtifactReport{Node: "n1", SHA256: shaA, Kind: ArtifactPulling, Source: "central", Held: 410 << 20, Size: 1 << 30, Time: t1h})
	if o := getOrder(t, e, "o1"); !strings.HasSuffix(o.Reason, "is not at the site yet: pulling from central, 40 %") {
		t.Errorf("reason after a report: %q", o.Reason)
	}
	e.applyOK(15, ReportArtifact, ArtifactReport{Node: "n1", SHA256: shaA, Kind: ArtifactFailed, Source: "central", Message: "503 Service Unavailable", Time: t1h})
	if o := getOrder(t, e, "o2"); !strings.HasSuffix(o.Reason, "the pull from central failed: 503 Service Unavailable") {
		t.Errorf("reason after a failure: %q", o.Reason)
	}
	if ev := lastEvent(t, e); ev.Kind != "artifact.failed" || !strings.Contains(ev.Message, "503") {
		t.Errorf("event %+v, want artifact.failed", ev)
	}

	e.applyOK(16, RecordArtifact, ArtifactHeld{Node: "n2", SHA256: shaA, Size: 1 << 30, Time: t1h})
	for _, id := range []string{"o1", "o2"} {
		o := getOrder(t, e, id)
		if o.State != store.OrderRunning || o.Workflow != id || len(o.Jobs) != 2 || o.Reason != "" || o.WaitingFor != nil || o.ImageSHA256 != shaA {
			t.Errorf("order %s after the artifact arrived: %+v, want running with its workflow and jobs", id, o)
		}
	}
	if ip := machineOf(t, e, "m1").Interfaces[0].IP; ip == "" {
		t.Error("o1 started without reserving m1's address")
	}
	var started []string
	e.view(func(tx *store.Tx) error {
		evs, err := tx.EventsSince(0, 1000)
		for _, ev := range evs {
			if ev.Kind == "order.started" && ev.Index == 16 {
				started = append(started, ev.Fields["order"])
			}
		}
		return err
	})
	if !cmp.Equal(started, []string{"o1", "o2"}) {
		t.Errorf("orders started %v, want o1 then o2, as placed", started)
	}
	var waiting []*store.Order
	e.view(func(tx *store.Tx) (err error) { waiting, err = tx.WaitingOrders(); return err })
	if len(waiting) != 0 {
		t.Errorf("still waiting: %v", waiting)
	}
}

// TestWaitingOrderInstaller: an order waits for its installer's kernel
// and initrd where they are artifacts, one after the other.
func TestWaitingOrderInstaller(t *testing.T) {
	e := orderSite(t)
	e.applyOK(7, PutImage, Put[store.Image]{Object: casInstaller("installer"), Time: t0})
	o := placeOrder(t, e, PlaceOrder, 10, provisionOf("o1", "m1", "debian"))
	if o.State != store.OrderWaiting || len(o.WaitingFor) != 2 || !strings.HasPrefix(o.Reason, "the initrd of installer installer (sha256:d4d4") ||
		!strings.HasSuffix(o.Reason, "(and 1 more artifacts)") {
		t.Fatalf("order %+v, want waiting for the installer's two parts", o)
	}
	e.applyOK(11, RecordArtifact, ArtifactHeld{Node: "n1", SHA256: shaI, Size: 9, Time: t1h})
	if o := getOrder(t, e, "o1"); o.State != store.OrderWaiting || !cmp.Equal(o.WaitingFor, []string{shaK}) || !strings.HasPrefix(o.Reason, "the kernel of installer installer") {
		t.Fatalf("order %+v, want waiting for the kernel", o)
	}
	e.applyOK(12, RecordArtifact, ArtifactHeld{Node: "n1", SHA256: shaK, Size: 9, Time: t1h})
	if o := getOrder(t, e, "o1"); o.State != store.OrderRunning {
		t.Fatalf("order %s %q, want running", o.State, o.Reason)
	}
}

// TestWaitingOrderInstallerArch: an arm64 machine's order waits for the
// arm64 installer's kernel and initrd, not the x86_64 one's, which an
// x86_64 machine's waits for.
func TestWaitingOrderInstallerArch(t *testing.T) {
	e := orderSite(t)
	shaK64, shaI64 := strings.Repeat("e5", 32), strings.Repeat("f6", 32)
	e.applyOK(7, PutImage, Put[store.Image]{Object: casInstaller("installer"), Time: t0})
	e.applyOK(8, PutImage, Put[store.Image]{Object: &store.Image{Name: "installer-arm64", Type: store.ImageInstaller,
		Arch: store.ArchARM64, Kernel: "sha256:" + shaK64, Initrd: "sha256:" + shaI64}, Time: t0})
	m2 := sampleMachine("m2", "aa:bb:cc:00:00:02")
	m2.Arch = store.ArchARM64
	e.applyOK(9, PutMachine, Put[store.Machine]{Object: m2, Time: t0})
	o := placeOrder(t, e, PlaceOrder, 10, provisionOf("o1", "m2", "debian"))
	if got := slices.Sorted(slices.Values(o.WaitingFor)); o.State != store.OrderWaiting || !cmp.Equal(got, []string{shaK64, shaI64}) ||
		!strings.Contains(o.Reason, "installer installer-arm64") {
		t.Fatalf("arm64 order %+v, want waiting for the arm64 installer's two parts", o)
	}
	o = placeOrder(t, e, PlaceOrder, 11, provisionOf("o2", "m1", "debian"))
	if got := slices.Sorted(slices.Values(o.WaitingFor)); o.State != store.OrderWaiting || !cmp.Equal(got, []string{shaK, shaI}) {
		t.Fatalf("x86_64 order %+v, want waiting for the x86_64 installer's two parts", o)
	}
}

// TestWaitingOrderDeleted: a waiting order can be deleted (by an
// operator, or by central), and then nothing starts it; one whose image
// is deleted while it waits fails, saying why.
func TestWaitingOrderDeleted(t *testing.T) {
	e := waitSite(t)
	placeOrder(t, e, PlaceOrder, 10, provisionOf("o1", "m1", "ubuntu"))
	e.applyOK(11, ApplyDesired, desiredOf(1, false, putChange(t, DesiredOrder, "o2", provisionOf("o2", "m2", "ubuntu"))))
	if o := getOrder(t, e, "o2"); o.State != store.OrderWaiting {
		t.Fatalf("central's order %s, want waiting", o.State)
	}
	e.applyOK(12, DeleteOrder, Delete{Key: "o1", Time: t1h})
	e.applyOK(13, ApplyDesired, desiredOf(2, false, DesiredChange{Kind: DesiredOrder, Key: "o2", Deleted: true}))
	e.applyOK(14, RecordArtifact, ArtifactHeld{Node: "n1", SHA256: shaA, Size: 1 << 30, Time: t1h})
	if workflowExists(t, e, "o1") || workflowExists(t, e, "o2") {
		t.Error("a deleted waiting order started")
	}

	placeOrder(t, e, PlaceOrder, 15, provisionOf("o3", "m1", "debian"))
	if r := e.applyCmd(16, DeleteOrder, Delete{Key: "o3", Time: t1h}); errCode(r) != errs.CodeConflict {
		t.Errorf("delete of a running order: %v, want a conflict", r.Err)
	}

	e.applyOK(17, PutImage, Put[store.Image]{Object: casImage("centos", shaB, 1<<20), Time: t1h})
	placeOrder(t, e, PlaceOrder, 18, provisionOf("o4", "m2", "centos"))
	e.applyOK(19, DeleteImage, Delete{Key: "centos", Time: t1h})
	o := getOrder(t, e, "o4")
	if o.State != store.OrderFailed || !strings.Contains(o.Reason, `no image "centos"`) {
		t.Errorf("order whose image was deleted: %s %q, want failed naming it", o.State, o.Reason)
	}
	if ev := lastEvent(t, e); ev.Kind != "order.failed" || ev.Fields["order"] != "o4" {
		t.Errorf("event %+v, want order.failed", ev)
	}
}

// TestArtifactReplay: the same log applied entry by entry or in groups,
// on two stores, comes to the same bytes: records, waiting orders and
// their start read no clock but the commands'.
func TestArtifactReplay(t *testing.T) {
	log := []cmd{
		{PutMachine, Put[store.Machine]{Object: sampleMachine("m1", "aa:bb:cc:00:00:01"), Time: t0}},
		{PutImage, Put[store.Image]{Object: casImage("ubuntu", shaA, 1<<30), Time: t0}},
		{PutTemplate, Put[store.Template]{Object: sampleTemplate("install"), Time: t0}},
		{PutSubnet, Put[store.Subnet]{Object: sampleSubnet("lab"), Time: t0}},
		{PlaceOrder, Put[store.Order]{Object: provisionOf("o1", "m1", "ubuntu"), Time: t0.Add(time.Minute)}},
		{ReportArtifact, ArtifactReport{Node: "n1", SHA256: shaA, Kind: ArtifactPulling, Source: "central", Held: 1, Size: 1 << 30, Time: t0.Add(2 * time.Minute)}},
		{RecordArtifact, ArtifactHeld{Node: "n1", SHA256: shaA, Size: 1 << 30, Time: t0.Add(3 * time.Minute)}},
		{RecordArtifact, ArtifactHeld{Node: "n2", SHA256: shaA, Size: 1 << 30, Time: t0.Add(4 * time.Minute)}},
		{DeleteImage, Delete{Key: "ubuntu", Time: t0.Add(5 * time.Minute)}},
		{ForgetArtifact, ArtifactHeld{Node: "n1", SHA256: shaA, Time: t0.Add(6 * time.Minute)}},
	}
	one, grouped := newEnv(t), newEnv(t)
	var batch []command.Entry
	for i, c := range log {
		en := cmdEntry(t, uint64(i+1), c.typ, c.payload)
		if r := one.apply(en); r.Err != nil {
			t.Fatalf("entry %d: %v", i+1, r.Err)
		}
		batch = append(batch, en)
		if len(batch) == 3 || i == len(log)-1 {
			grouped.applyAll(batch...)
			batch = nil
		}
	}
	if diff := cmp.Diff(rawDump(t, one.db), rawDump(t, grouped.db)); diff != "" {
		t.Errorf("the same log came to different stores (-one by one +grouped):\n%s", diff)
	}
	if o := getOrder(t, one, "o1"); o.State != store.OrderRunning {
		t.Errorf("order %s, want running", o.State)
	}
	if a := artifactOf(t, one, shaA); a == nil || !cmp.Equal(a.Holders(), []string{"n2"}) || a.Referenced() {
		t.Errorf("record %+v, want held by n2 alone, unreferenced", a)
	}
}

// TestUpgradedSiteGetsArtifactRecords: the commands of release e85a6fa
// keep their meaning on replay (an image put by PutImageV1 makes no
// record; PlaceOrderV2 starts an order at once), and a site upgraded
// with such an image comes to have its record at its first order of this
// release, which waits for the artifact (so the replicator, which plans
// from the records, pulls it) rather than waiting for ever.
func TestUpgradedSiteGetsArtifactRecords(t *testing.T) {
	e := orderSite(t)
	e.applyOK(7, PutImageV1, Put[store.Image]{Object: casImage("ubuntu", shaA, 1<<30), Time: t0})
	e.applyOK(8, PutMachine, Put[store.Machine]{Object: sampleMachine("m2", "aa:bb:cc:00:00:02"), Time: t0})
	record := func() *store.Artifact {
		var a *store.Artifact
		e.view(func(tx *store.Tx) error { a, _ = store.Get[store.Artifact](tx, shaA); return nil })
		return a
	}
	if r := record(); r != nil {
		t.Fatalf("record after PutImageV1: %+v, want none (that release kept none)", r)
	}
	if o := placeOrder(t, e, PlaceOrderV2, 9, provisionOf("old", "m1", "ubuntu")); o.State != store.OrderRunning || o.Workflow != "old" {
		t.Fatalf("PlaceOrderV2: %+v, want running at once, as that release did", o)
	}
	o := placeOrder(t, e, PlaceOrder, 10, provisionOf("new", "m2", "ubuntu"))
	if o.State != store.OrderWaiting || !cmp.Equal(o.WaitingFor, []string{shaA}) {
		t.Fatalf("PlaceOrder: %+v, want waiting for ubuntu's artifact", o)
	}
	if r := record(); r == nil || !cmp.Equal(r.Names, []string{"ubuntu"}) || !r.Referenced() {
		t.Fatalf("record after the first order of this release: %+v, want ubuntu's", r)
	}
}
