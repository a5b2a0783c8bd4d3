package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

// workflowSite stores what a workflow refers to: machine m1, image debian
// and template install (wipe → write → reboot).
func workflowSite(t *testing.T) *store.DB {
	t.Helper()
	db := openDB(t)
	update(t, db, func(tx *store.Tx) error {
		for i, o := range []store.Object{sampleMachine("m1", "aa:bb:cc:00:00:01"), sampleImage("debian"), sampleTemplate("install")} {
			if err := tx.UnsafePut(o, store.Write{Index: uint64(i + 1), Time: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	return db
}

func eventKinds(t *testing.T, db *store.DB) []string {
	t.Helper()
	var kinds []string
	view(t, db, func(tx *store.Tx) error {
		events, err := tx.EventsSince(0, 1000)
		for _, e := range events {
			kinds = append(kinds, e.Kind)
		}
		return err
	})
	return kinds
}

func machineOf(t *testing.T, db *store.DB, id string) *store.Machine {
	t.Helper()
	var m *store.Machine
	view(t, db, func(tx *store.Tx) (err error) { m, err = store.Get[store.Machine](tx, id); return err })
	return m
}

func TestCreateWorkflow(t *testing.T) {
	db := workflowSite(t)
	w := sampleWorkflow("wf1")
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(w, store.Write{Index: 10, Time: t0}) })

	if w.Status() != workflow.Pending || len(w.State.Actions) != 3 {
		t.Fatalf("created workflow: status %s, %d actions", w.Status(), len(w.State.Actions))
	}
	write, _ := w.State.Plan.Action("write")
	img := sampleImage("debian")
	if write.Args["url"] != img.URL || write.Args["sha256"] != img.SHA256 || write.Args["format"] != img.Format || write.Args["device"] != "/dev/sda" {
		t.Errorf("image.write args = %v: want the image resolved into url, sha256 and format", write.Args)
	}
	if w.Values["hostname"] != "m1.example.net" || w.Values["machine_id"] != "m1" {
		t.Errorf("values = %v: want hostname and machine_id filled in", w.Values)
	}
	m := machineOf(t, db, "m1")
	if m.State != store.StateProvisioning || m.Workflow != "wf1" {
		t.Errorf("machine is %s with workflow %q, want provisioning with wf1", m.State, m.Workflow)
	}
	if diff := strings.Join(eventKinds(t, db), " "); diff != "workflow.created machine.state" {
		t.Errorf("events: %s", diff)
	}
}

func TestCreateWorkflowRefused(t *testing.T) {
	tests := map[string]struct {
		prep  func(tx *store.Tx) error
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
			prep: func(tx *store.Tx) error {
				i := sampleImage("nosum")
				i.SHA256 = ""
				return tx.UnsafePut(i, store.Write{Index: 9, Time: t0})
			},
			w:    func() *store.Workflow { w := sampleWorkflow("wf"); w.Values["image"] = "nosum"; return w },
			code: errs.CodeInvalid, field: "actions[1].args.image", msg: "no sha256",
		},
		"machine busy": {
			prep: func(tx *store.Tx) error {
				return tx.UnsafePut(sampleWorkflow("first"), store.Write{Index: 9, Time: t0})
			},
			w:    func() *store.Workflow { return sampleWorkflow("second") },
			code: errs.CodeConflict, msg: `running workflow "first"`,
		},
		"exists": {
			prep: func(tx *store.Tx) error { return tx.UnsafePut(sampleWorkflow("wf"), store.Write{Index: 9, Time: t0}) },
			w:    func() *store.Workflow { return sampleWorkflow("wf") },
			code: errs.CodeConflict, msg: "exists",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db := workflowSite(t)
			if tc.prep != nil {
				update(t, db, tc.prep)
			}
			before := eventKinds(t, db)
			err := db.Update(func(tx *store.Tx) error { return tx.UnsafePut(tc.w(), store.Write{Index: 10, Time: t0}) })
			code, field := errField(t, err)
			if code != tc.code || field != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v (code %s, field %s), want code %s, field %q, containing %q", err, code, field, tc.code, tc.field, tc.msg)
			}
			if after := eventKinds(t, db); len(after) != len(before) {
				t.Errorf("a refused workflow recorded events: %v", after[len(before):])
			}
		})
	}
}

// advance applies one step at index i.
func advance(t *testing.T, db *store.DB, i uint64, step func(workflow.State) (workflow.State, []workflow.Transition, error)) (*store.Workflow, error) {
	t.Helper()
	var w *store.Workflow
	err := db.Update(func(tx *store.Tx) (err error) {
		w, err = tx.UnsafeAdvanceWorkflow("wf1", store.Write{Index: i, Time: t0.Add(time.Duration(i) * time.Second)}, step)
		return err
	})
	return w, err
}

func start(name string, attempt int, at time.Time) func(workflow.State) (workflow.State, []workflow.Transition, error) {
	return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
		return workflow.Start(st, name, attempt, at)
	}
}

func finish(name string, attempt int, ok bool, msg string, at time.Time) func(workflow.State) (workflow.State, []workflow.Transition, error) {
	return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
		return workflow.Finish(st, name, attempt, ok, msg, at)
	}
}

func TestAdvanceWorkflowSucceeds(t *testing.T) {
	db := workflowSite(t)
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(sampleWorkflow("wf1"), store.Write{Index: 10, Time: t0}) })
	i := uint64(11)
	for _, a := range []string{"wipe", "write", "reboot"} {
		for _, step := range []func(workflow.State) (workflow.State, []workflow.Transition, error){
			start(a, 1, t0.Add(time.Minute)), start(a, 1, t0.Add(time.Minute)), // the second is a duplicate
			finish(a, 1, true, "done", t0.Add(2*time.Minute)),
		} {
			if _, err := advance(t, db, i, step); err != nil {
				t.Fatalf("%s at %d: %v", a, i, err)
			}
			i++
		}
	}
	m := machineOf(t, db, "m1")
	if m.State != store.StateProvisioned || m.Reason != "" {
		t.Errorf("machine is %s (%q), want provisioned", m.State, m.Reason)
	}
	want := "workflow.created machine.state workflow.running action.running action.succeeded " +
		"action.running action.succeeded action.running action.succeeded workflow.succeeded machine.state"
	if got := strings.Join(eventKinds(t, db), " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	// A finished workflow refuses reports, changing nothing.
	if _, err := advance(t, db, i, start("wipe", 2, t0.Add(time.Hour))); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("report to a finished workflow: %v, want a conflict saying it is finished", err)
	}
	// It can be deleted now; the machine keeps its state.
	update(t, db, func(tx *store.Tx) error { return tx.UnsafeDelete(&store.Workflow{}, "wf1", 0) })
	if m := machineOf(t, db, "m1"); m.State != store.StateProvisioned {
		t.Errorf("machine after its workflow was deleted: %s", m.State)
	}
}

func TestAdvanceWorkflowFails(t *testing.T) {
	db := workflowSite(t)
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(sampleWorkflow("wf1"), store.Write{Index: 10, Time: t0}) })
	if _, err := advance(t, db, 11, start("wipe", 1, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := advance(t, db, 12, finish("wipe", 1, false, "no such device /dev/sda", t0)); err != nil {
		t.Fatal(err)
	}
	m := machineOf(t, db, "m1")
	if m.State != store.StateFailed || !strings.Contains(m.Reason, "no such device /dev/sda") {
		t.Errorf("machine is %s (%q), want failed naming the action's error", m.State, m.Reason)
	}
	// An active workflow cannot be deleted; a failed one can.
	update(t, db, func(tx *store.Tx) error { return tx.UnsafeDelete(&store.Workflow{}, "wf1", 0) })
}

func TestDeleteActiveWorkflowRefused(t *testing.T) {
	db := workflowSite(t)
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(sampleWorkflow("wf1"), store.Write{Index: 10, Time: t0}) })
	err := db.Update(func(tx *store.Tx) error { return tx.UnsafeDelete(&store.Workflow{}, "wf1", 0) })
	if code, _ := errField(t, err); code != errs.CodeConflict {
		t.Errorf("deleting an active workflow: %v, want a conflict", err)
	}
}

func TestDeprovisionFollows(t *testing.T) {
	db := workflowSite(t)
	w := sampleWorkflow("wf1")
	w.Purpose = store.PurposeDeprovision
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(w, store.Write{Index: 10, Time: t0}) })
	if m := machineOf(t, db, "m1"); m.State != store.StateDeprovisioning {
		t.Errorf("machine is %s, want deprovisioning", m.State)
	}
	i := uint64(11)
	for _, a := range []string{"wipe", "write", "reboot"} {
		for _, step := range []func(workflow.State) (workflow.State, []workflow.Transition, error){start(a, 1, t0), finish(a, 1, true, "", t0)} {
			if _, err := advance(t, db, i, step); err != nil {
				t.Fatal(err)
			}
			i++
		}
	}
	if m := machineOf(t, db, "m1"); m.State != store.StateReady {
		t.Errorf("machine is %s after deprovisioning, want ready", m.State)
	}
}

// TestDueWorkflows: the index of active workflows knows when each needs
// its next tick, and forgets a workflow that has ended.
func TestDueWorkflows(t *testing.T) {
	db := workflowSite(t)
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(sampleWorkflow("wf1"), store.Write{Index: 10, Time: t0}) })
	due := func(at time.Time) string {
		t.Helper()
		var ids []string
		view(t, db, func(tx *store.Tx) (err error) { ids, err = tx.DueWorkflows(at); return err })
		return strings.Join(ids, ",")
	}
	if got := due(t0.Add(time.Hour)); got != "" {
		t.Errorf("due with nothing running: %q", got)
	}
	started := t0.Add(time.Minute)
	if _, err := advance(t, db, 11, start("wipe", 1, started)); err != nil { // wipe times out after 90s
		t.Fatal(err)
	}
	if got := due(started.Add(89 * time.Second)); got != "" {
		t.Errorf("due before the timeout: %q", got)
	}
	if got := due(started.Add(90 * time.Second)); got != "wf1" {
		t.Errorf("due at the timeout: %q, want wf1", got)
	}
	if _, err := advance(t, db, 12, finish("wipe", 1, false, "broken", started)); err != nil {
		t.Fatal(err)
	}
	if got := due(started.Add(time.Hour)); got != "" {
		t.Errorf("due after the workflow failed: %q", got)
	}
}
