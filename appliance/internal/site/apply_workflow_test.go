package site

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

// workflowSite stores what a workflow refers to: machine m1, image debian
// (held by node n1, so orders for it start at once) and template install
// (wipe → write → reboot), at indexes 1-3.
func workflowSite(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: sampleMachine("m1", "aa:bb:cc:00:00:01"), Time: t0})
	e.putHeldImage(2, sampleImage("debian"))
	e.applyOK(3, PutTemplate, Put[store.Template]{Object: sampleTemplate("install"), Time: t0})
	return e
}

func machineOf(t *testing.T, e *env, id string) *store.Machine {
	t.Helper()
	var m *store.Machine
	e.view(func(tx *store.Tx) (err error) { m, err = store.Get[store.Machine](tx, id); return err })
	return m
}

// putWorkflow creates w at index i; it must succeed.
func putWorkflow(t *testing.T, e *env, i uint64, w *store.Workflow) *store.Workflow {
	t.Helper()
	r := e.applyOK(i, PutWorkflow, Put[store.Workflow]{Object: w, Time: t0})
	got, err := DecodeValue[store.Workflow](r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestCreateWorkflow(t *testing.T) {
	e := workflowSite(t)
	w := putWorkflow(t, e, 10, sampleWorkflow("wf1"))

	if w.Status() != workflow.Pending || len(w.State.Actions) != 3 {
		t.Fatalf("created workflow: status %s, %d actions", w.Status(), len(w.State.Actions))
	}
	write, _ := w.State.Plan.Action("write")
	img := sampleImage("debian")
	if write.Args["url"] != ArtifactPath+img.SHA256 || write.Args["sha256"] != img.SHA256 || write.Args["format"] != img.Format || write.Args["device"] != "/dev/sda" {
		t.Errorf("image.write args = %v: want the image resolved into url, sha256 and format", write.Args)
	}
	if w.Values["hostname"] != "m1.example.net" || w.Values["machine_id"] != "m1" {
		t.Errorf("values = %v: want hostname and machine_id filled in", w.Values)
	}
	m := machineOf(t, e, "m1")
	if m.State != store.StateProvisioning || m.Workflow != "wf1" {
		t.Errorf("machine is %s with workflow %q, want provisioning with wf1", m.State, m.Workflow)
	}
	if diff := strings.Join(eventKinds(t, e), " "); diff != "workflow.created machine.state" {
		t.Errorf("events: %s", diff)
	}
}

func TestCreateWorkflowRefused(t *testing.T) {
	tests := map[string]struct {
		prep  func(e *env)
		w     func() *store.Workflow
		code  string
		field string
		msg   string
	}{
		"no machine": {
			w:    func() *store.Workflow { w := sampleWorkflow("wf"); w.MachineID = "ghost"; return w },
			code: errs.CodeInvalid, field: "machine_id",
		},
		"no template": {
			w:    func() *store.Workflow { w := sampleWorkflow("wf"); w.Template = "ghost"; return w },
			code: errs.CodeInvalid, field: "template",
		},
		"missing value": {
			w:    func() *store.Workflow { w := sampleWorkflow("wf"); w.Values = nil; return w },
			code: errs.CodeInvalid, field: "actions[1].args.image", msg: "image",
		},
		"no such image": {
			w:    func() *store.Workflow { w := sampleWorkflow("wf"); w.Values["image"] = "ghost"; return w },
			code: errs.CodeInvalid, field: "actions[1].args.image", msg: `no image "ghost"`,
		},
		"image without sha256": {
			prep: func(e *env) {
				i := sampleImage("nosum")
				i.SHA256 = ""
				e.applyOK(9, PutImage, Put[store.Image]{Object: i, Time: t0})
			},
			w:    func() *store.Workflow { w := sampleWorkflow("wf"); w.Values["image"] = "nosum"; return w },
			code: errs.CodeInvalid, field: "actions[1].args.image", msg: "no sha256",
		},
		"machine busy": {
			prep: func(e *env) { putWorkflow(e.t, e, 9, sampleWorkflow("first")) },
			w:    func() *store.Workflow { return sampleWorkflow("second") },
			code: errs.CodeConflict, msg: `running workflow "first"`,
		},
		"exists": {
			prep: func(e *env) { putWorkflow(e.t, e, 9, sampleWorkflow("wf")) },
			w:    func() *store.Workflow { return sampleWorkflow("wf") },
			code: errs.CodeConflict, msg: "exists",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := workflowSite(t)
			if tc.prep != nil {
				tc.prep(e)
			}
			before := eventKinds(t, e)
			r := e.applyCmd(10, PutWorkflow, Put[store.Workflow]{Object: tc.w(), Time: t0})
			err := resultErr(r)
			if err == nil {
				t.Fatalf("result %+v, want a refusal", r)
			}
			if code, field := r.Err.Code, r.Err.Field; code != tc.code || field != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v (code %s, field %s), want code %s, field %q, containing %q", err, code, field, tc.code, tc.field, tc.msg)
			}
			if after := eventKinds(t, e); len(after) != len(before) {
				t.Errorf("a refused workflow recorded events: %v", after[len(before):])
			}
		})
	}
}

// report is an agent's report on one attempt of an action, made at a
// time, which is the command's: the proposer's clock.
type report struct {
	Report
	at time.Time
}

func start(name string, attempt int, at time.Time) report {
	return report{Report{Action: name, Attempt: attempt, Kind: ReportStart}, at}
}

func finish(name string, attempt int, ok bool, msg string, at time.Time) report {
	return report{Report{Action: name, Attempt: attempt, Kind: ReportFinish, OK: ok, Message: msg}, at}
}

// advanceAt applies an agent's report to workflow id at index i.
func advanceAt(t *testing.T, e *env, id string, i uint64, rep report) (*store.Workflow, error) {
	t.Helper()
	r := e.applyCmd(i, AdvanceWorkflow, Advance{Workflow: id, Kind: AdvanceReport, Report: &rep.Report, Time: rep.at})
	if r.Err != nil {
		return nil, r.Err
	}
	return DecodeValue[store.Workflow](r)
}

// advance applies an agent's report to workflow wf1 at index i.
func advance(t *testing.T, e *env, i uint64, rep report) (*store.Workflow, error) {
	t.Helper()
	return advanceAt(t, e, "wf1", i, rep)
}

func TestAdvanceWorkflowSucceeds(t *testing.T) {
	e := workflowSite(t)
	putWorkflow(t, e, 10, sampleWorkflow("wf1"))
	i := uint64(11)
	for _, a := range []string{"wipe", "write", "reboot"} {
		for _, rep := range []report{
			start(a, 1, t0.Add(time.Minute)), start(a, 1, t0.Add(time.Minute)), // the second is a duplicate
			finish(a, 1, true, "done", t0.Add(2*time.Minute)),
		} {
			if _, err := advance(t, e, i, rep); err != nil {
				t.Fatalf("%s at %d: %v", a, i, err)
			}
			i++
		}
	}
	m := machineOf(t, e, "m1")
	if m.State != store.StateProvisioned || m.Reason != "" {
		t.Errorf("machine is %s (%q), want provisioned", m.State, m.Reason)
	}
	want := "workflow.created machine.state workflow.running action.running action.succeeded " +
		"action.running action.succeeded action.running action.succeeded workflow.succeeded machine.state"
	if got := strings.Join(eventKinds(t, e), " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	// A finished workflow refuses reports, changing nothing.
	if _, err := advance(t, e, i, start("wipe", 2, t0.Add(time.Hour))); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("report to a finished workflow: %v, want a conflict saying it is finished", err)
	}
	// It can be deleted now; the machine keeps its state.
	e.applyOK(i+1, DeleteWorkflow, Delete{Key: "wf1", Time: t0})
	if m := machineOf(t, e, "m1"); m.State != store.StateProvisioned {
		t.Errorf("machine after its workflow was deleted: %s", m.State)
	}
}

func TestAdvanceWorkflowFails(t *testing.T) {
	e := workflowSite(t)
	putWorkflow(t, e, 10, sampleWorkflow("wf1"))
	if _, err := advance(t, e, 11, start("wipe", 1, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := advance(t, e, 12, finish("wipe", 1, false, "no such device /dev/sda", t0)); err != nil {
		t.Fatal(err)
	}
	m := machineOf(t, e, "m1")
	if m.State != store.StateFailed || !strings.Contains(m.Reason, "no such device /dev/sda") {
		t.Errorf("machine is %s (%q), want failed naming the action's error", m.State, m.Reason)
	}
	// An active workflow cannot be deleted; a failed one can.
	e.applyOK(13, DeleteWorkflow, Delete{Key: "wf1", Time: t0})
}

func TestDeleteActiveWorkflowRefused(t *testing.T) {
	e := workflowSite(t)
	putWorkflow(t, e, 10, sampleWorkflow("wf1"))
	r := e.applyCmd(11, DeleteWorkflow, Delete{Key: "wf1", Time: t0})
	if errCode(r) != errs.CodeConflict {
		t.Errorf("deleting an active workflow: %v, want a conflict", resultErr(r))
	}
}

func TestDeprovisionFollows(t *testing.T) {
	e := workflowSite(t)
	w := sampleWorkflow("wf1")
	w.Purpose = store.PurposeDeprovision
	putWorkflow(t, e, 10, w)
	if m := machineOf(t, e, "m1"); m.State != store.StateDeprovisioning {
		t.Errorf("machine is %s, want deprovisioning", m.State)
	}
	i := uint64(11)
	for _, a := range []string{"wipe", "write", "reboot"} {
		for _, rep := range []report{start(a, 1, t0), finish(a, 1, true, "", t0)} {
			if _, err := advance(t, e, i, rep); err != nil {
				t.Fatal(err)
			}
			i++
		}
	}
	if m := machineOf(t, e, "m1"); m.State != store.StateReady {
		t.Errorf("machine is %s after deprovisioning, want ready", m.State)
	}
}

// TestLoseAttempt: the wipe of a deprovision, which has no retries, is
// retried when its agent died during it (the next agent's lost report),
// and the machine ends deprovisioned; the events say the attempt was
// lost. A lost report in an AdvanceWorkflow, which the releases before
// LoseAttempt applied, is refused and changes nothing.
func TestLoseAttempt(t *testing.T) {
	e := workflowSite(t)
	w := sampleWorkflow("wf1")
	w.Purpose = store.PurposeDeprovision
	putWorkflow(t, e, 10, w)
	if _, err := advance(t, e, 11, start("wipe", 1, t0)); err != nil {
		t.Fatal(err)
	}
	lost := Report{Action: "wipe", Attempt: 1, Kind: ReportLost, Message: "the agent restarted during attempt 1"}
	r := e.applyCmd(12, AdvanceWorkflow, Advance{Workflow: "wf1", Kind: AdvanceReport, Report: &lost, Time: t0.Add(time.Minute)})
	if errCode(r) != errs.CodeInvalid {
		t.Fatalf("a lost report in an AdvanceWorkflow: %+v, want invalid", r)
	}
	r = e.applyCmd(13, LoseAttempt, Advance{Workflow: "wf1", Kind: AdvanceReport, Report: &lost, Time: t0.Add(time.Minute)})
	if r.Err != nil {
		t.Fatalf("LoseAttempt: %v", r.Err)
	}
	if m := machineOf(t, e, "m1"); m.State != store.StateDeprovisioning {
		t.Fatalf("machine is %s (%q) after a lost wipe, want deprovisioning", m.State, m.Reason)
	}
	if ev := lastEvent(t, e); ev.Kind != "action.pending" || !strings.Contains(ev.Message, "lost attempt 1") {
		t.Errorf("last event %s %q, want the retry naming the lost attempt", ev.Kind, ev.Message)
	}
	i := uint64(14)
	for _, rep := range []report{start("wipe", 2, t0.Add(time.Minute)), finish("wipe", 2, true, "", t0.Add(2*time.Minute)),
		start("write", 1, t0.Add(2*time.Minute)), finish("write", 1, true, "", t0.Add(3*time.Minute)),
		start("reboot", 1, t0.Add(3*time.Minute)), finish("reboot", 1, true, "", t0.Add(3*time.Minute))} {
		if _, err := advance(t, e, i, rep); err != nil {
			t.Fatalf("%+v: %v", rep, err)
		}
		i++
	}
	if m := machineOf(t, e, "m1"); m.State != store.StateReady {
		t.Errorf("machine is %s (%q) after the retried wipe, want ready", m.State, m.Reason)
	}
}

// TestDueWorkflows: the index of active workflows knows when each needs
// its next tick, and forgets a workflow that has ended.
func TestDueWorkflows(t *testing.T) {
	e := workflowSite(t)
	putWorkflow(t, e, 10, sampleWorkflow("wf1"))
	due := func(at time.Time) string {
		t.Helper()
		var ids []string
		e.view(func(tx *store.Tx) (err error) { ids, err = tx.DueWorkflows(at); return err })
		return strings.Join(ids, ",")
	}
	if got := due(t0.Add(time.Hour)); got != "" {
		t.Errorf("due with nothing running: %q", got)
	}
	started := t0.Add(time.Minute)
	if _, err := advance(t, e, 11, start("wipe", 1, started)); err != nil { // wipe times out after 90s
		t.Fatal(err)
	}
	if got := due(started.Add(89 * time.Second)); got != "" {
		t.Errorf("due before the timeout: %q", got)
	}
	if got := due(started.Add(90 * time.Second)); got != "wf1" {
		t.Errorf("due at the timeout: %q, want wf1", got)
	}
	if _, err := advance(t, e, 12, finish("wipe", 1, false, "broken", started)); err != nil {
		t.Fatal(err)
	}
	if got := due(started.Add(time.Hour)); got != "" {
		t.Errorf("due after the workflow failed: %q", got)
	}
}

// claim applies a claim of workflow id by addr at index i.
func claim(t *testing.T, e *env, i uint64, id, addr string) (*store.Workflow, *errs.Error) {
	t.Helper()
	r := e.applyCmd(i, BindWorkflow, Bind{Workflow: id, Addr: addr, Time: t0.Add(time.Minute)})
	if r.Err != nil {
		return nil, r.Err
	}
	w, err := DecodeValue[store.Workflow](r)
	if err != nil {
		t.Fatal(err)
	}
	return w, nil
}

func workflowOf(t *testing.T, e *env, id string) *store.Workflow {
	t.Helper()
	var w *store.Workflow
	e.view(func(tx *store.Tx) (err error) { w, err = store.Get[store.Workflow](tx, id); return err })
	return w
}

// TestBindWorkflow: the first address to claim an active workflow's
// credential is recorded, with an event; a later claim changes nothing and
// learns the first address; claims on an unknown workflow, and addresses
// not in canonical form, are refused and change nothing. The binding
// stays with its workflow when it ends; the machine's next workflow starts
// unbound.
func TestBindWorkflow(t *testing.T) {
	e := workflowSite(t)
	putWorkflow(t, e, 10, sampleWorkflow("wf1"))
	w, rerr := claim(t, e, 11, "wf1", "198.18.0.10")
	if rerr != nil || w.BootAddr != "198.18.0.10" {
		t.Fatalf("first claim: %+v, %v; want bound to 198.18.0.10", w, rerr)
	}
	checkEventKinds(t, e, "workflow.created", "machine.state", "workflow.bound")
	before := rawDump(t, e.db)
	i := uint64(12)
	if w, rerr := claim(t, e, i, "wf1", "198.18.0.66"); rerr != nil || w.BootAddr != "198.18.0.10" {
		t.Errorf("second claim: %+v, %v; want the first address, unchanged", w, rerr)
	}
	for name, tc := range map[string]struct {
		id, addr, code string
	}{
		"unknown workflow": {"ghost", "198.18.0.66", errs.CodeNotFound},
		"not an address":   {"wf1", "host.example", errs.CodeInvalid},
		"mapped v4":        {"wf1", "::ffff:198.18.0.66", errs.CodeInvalid},
		"zone":             {"wf1", "fe80::1%eth0", errs.CodeInvalid},
		"empty":            {"wf1", "", errs.CodeInvalid},
	} {
		i++
		if _, rerr := claim(t, e, i, tc.id, tc.addr); rerr == nil || rerr.Code != tc.code {
			t.Errorf("%s: %v, want code %s", name, rerr, tc.code)
		}
	}
	if diff := cmp.Diff(withApplied(before, i), rawDump(t, e.db)); diff != "" {
		t.Errorf("refused and repeated claims changed the store (-before +after):\n%s", diff)
	}

	e.applyOK(i+1, AdvanceWorkflow, Advance{Workflow: "wf1", Kind: AdvanceCancel, Time: t0.Add(time.Hour)})
	putWorkflow(t, e, i+2, sampleWorkflow("wf2"))
	if w := workflowOf(t, e, "wf1"); w.BootAddr != "198.18.0.10" {
		t.Errorf("the ended workflow lost its binding: %q", w.BootAddr)
	}
	if w := workflowOf(t, e, "wf2"); w.BootAddr != "" {
		t.Errorf("the machine's next workflow starts bound to %q", w.BootAddr)
	}
}

// TestBindEndedWorkflow: an ended workflow takes no claim.
func TestBindEndedWorkflow(t *testing.T) {
	e := workflowSite(t)
	putWorkflow(t, e, 10, sampleWorkflow("wf1"))
	e.applyOK(11, AdvanceWorkflow, Advance{Workflow: "wf1", Kind: AdvanceCancel, Time: t0.Add(time.Hour)})
	if _, rerr := claim(t, e, 12, "wf1", "198.18.0.10"); rerr == nil || rerr.Code != errs.CodeConflict {
		t.Errorf("a claim on an ended, unbound workflow: %v, want a conflict", rerr)
	}
	if w := workflowOf(t, e, "wf1"); w.BootAddr != "" {
		t.Errorf("the ended workflow was bound to %q", w.BootAddr)
	}
}
