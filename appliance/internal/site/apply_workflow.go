package site

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Workflows: created by binding a template to a machine, moved on by the
// agent's reports, the leader's timer and cancels (package workflow has
// the transitions), and followed by their machine's state and their
// order.

func applyPutWorkflow(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Put[store.Workflow]
	command.MustDecode(payload, &req, index)
	if req.Object == nil {
		return nil, errs.Invalid("object", "is required")
	}
	w := req.Object
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	wr := store.Write{Expect: req.Expect, Index: index, Time: req.Time, By: req.By}
	if err := createWorkflow(tx, w, wr); err != nil {
		return nil, err
	}
	return w, appendEvents(tx, req.Events, wr)
}

// createWorkflow stores a new workflow: it binds the template's actions
// with the workflow's values (filling in the well-known ones), resolves
// the site images that image.write actions name, builds the plan and its
// initial state, and makes it the machine's current workflow, whose state
// the machine now follows. It refuses a workflow that exists, a missing
// machine or template, a machine whose current workflow has not ended,
// and a plan that does not bind or validate, naming the field.
func createWorkflow(tx *store.Tx, w *store.Workflow, wr store.Write) error {
	if _, err := store.Get[store.Workflow](tx, w.ID); err == nil {
		return errs.Conflict("workflow %q exists: a workflow changes only through its agent's reports, its timer and cancel", w.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	m, err := store.Get[store.Machine](tx, w.MachineID)
	if err != nil {
		return errs.Invalid("machine_id", "no machine %q", w.MachineID)
	}
	if m.Workflow != "" {
		cur, err := store.Get[store.Workflow](tx, m.Workflow)
		if err == nil && cur.Active() {
			return errs.Conflict("machine %q is running workflow %q (%s): cancel it first", m.ID, cur.ID, cur.Status())
		}
	}
	t, err := store.Get[store.Template](tx, w.Template)
	if err != nil {
		return errs.Invalid("template", "no template %q", w.Template)
	}
	plan, n, err := bindTemplate(tx, t, m, w)
	if err != nil {
		return err
	}
	var deadline time.Time
	if w.Timeout > 0 {
		deadline = wr.Time.Add(time.Duration(w.Timeout))
	}
	st := workflow.NewState(plan, deadline)
	w.State = &st
	if err := tx.UnsafePutWorkflow(w, wr); err != nil {
		return err
	}
	if err := event(tx, wr, store.Event{
		MachineID: m.ID, Kind: "workflow.created",
		Message: fmt.Sprintf("workflow %s created from template %s (%d actions)", w.ID, t.Name, n),
		Fields:  map[string]string{"workflow": w.ID, "template": t.Name, "purpose": w.Purpose},
	}); err != nil {
		return err
	}
	return followWorkflow(tx, m, w, wr)
}

// bindTemplate binds t's actions with w's values, the machine's defaults
// filled in, resolves the site images they name, and returns the plan and
// its number of actions.
func bindTemplate(tx *store.Tx, t *store.Template, m *store.Machine, w *store.Workflow) (*workflow.Plan, int, error) {
	bound, err := bindActions(tx, t, m, w)
	if err != nil {
		return nil, 0, err
	}
	plan, err := workflow.NewPlan(bound, actions.Required())
	if err != nil {
		return nil, 0, store.PlanError("template "+t.Name+": ", err)
	}
	return plan, len(bound), nil
}

// bindActions binds t's actions with w's values, the machine's defaults
// filled in (into w.Values), and resolves the site images they name.
func bindActions(tx *store.Tx, t *store.Template, m *store.Machine, w *store.Workflow) ([]workflow.Action, error) {
	w.Values = maps.Clone(w.Values)
	if w.Values == nil {
		w.Values = map[string]string{}
	}
	hostname := m.Hostname
	if hostname == "" {
		hostname = m.ID
	}
	defaults := map[string]string{actions.ValueMachineID: m.ID, actions.ValueHostname: hostname}
	for k, v := range defaults {
		if _, ok := w.Values[k]; !ok {
			w.Values[k] = v
		}
	}
	bound, err := workflow.Bind(t.PlanActions(), w.Values)
	if err != nil {
		return nil, store.PlanError("template "+t.Name+": ", err)
	}
	for i := range bound {
		if err := resolveImage(tx, i, &bound[i]); err != nil {
			return nil, err
		}
	}
	return bound, nil
}

// resolveImage fills in url, sha256 and format of an image.write action
// that names a site image, so the plan records exactly what is written.
// An image that is a file of each node's artifact directory is fetched
// from /artifacts/<file>; any other (its sha256 alone, or an upstream
// URL the site pulls) from the site's artifacts, /artifacts/sha256/<hex>:
// a path the agent resolves against the appliance it booted from, so
// that no install reaches past the site.
func resolveImage(tx *store.Tx, i int, a *workflow.Action) error {
	if a.Type != "image.write" {
		return nil
	}
	f := fmt.Sprintf("actions[%d].args.", i)
	name := a.Args["image"]
	if name == "" {
		if a.Args["url"] == "" || a.Args["sha256"] == "" {
			return errs.Invalid(f+"image", "image.write needs image (a site image) or both url and sha256")
		}
		return nil
	}
	img, err := store.Get[store.Image](tx, name)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return errs.Invalid(f+"image", "no image %q", name)
	case err != nil:
		return err
	case img.Type != store.ImageOS:
		return errs.Invalid(f+"image", "image %q is an %s, not an os image", name, img.Type)
	case img.SHA256 == "":
		return errs.Invalid(f+"image", "image %q has no sha256: the agent could not verify it", name)
	}
	if img.File != "" {
		a.Args["url"] = "/artifacts/" + strings.TrimPrefix(img.File, "/")
	} else {
		a.Args["url"] = ArtifactPath + strings.ToLower(img.SHA256)
	}
	a.Args["sha256"] = strings.ToLower(img.SHA256)
	if a.Args["format"] == "" {
		a.Args["format"] = img.Format
	}
	return nil
}

// ArtifactPath is where the boot service serves an artifact by its
// digest: ArtifactPath + "<64 hex>".
const ArtifactPath = "/artifacts/sha256/"

// step is a workflow transition (package workflow).
type step func(workflow.State) (workflow.State, []workflow.Transition, error)

func applyAdvanceWorkflow(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Advance
	command.MustDecode(payload, &req, index)
	fn, err := req.step()
	if err != nil {
		return nil, err
	}
	return advanceWorkflow(tx, req.Workflow, store.Write{Index: index, Time: req.Time, By: req.By}, fn)
}

// step is the workflow transition a's kind names.
func (a *Advance) step() (step, error) {
	now := a.Time
	switch a.Kind {
	case AdvanceTick:
		return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			st, trs := workflow.Tick(st, now)
			return st, trs, nil
		}, nil
	case AdvanceCancel:
		reason := a.Reason
		if reason == "" {
			reason = "cancelled"
		}
		return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Cancel(st, reason, now)
		}, nil
	case AdvanceReport:
		return a.Report.step(now)
	}
	return nil, errs.Invalid("kind", "%q is not one of report, tick, cancel", a.Kind)
}

// applyLoseAttempt applies an agent's lost report (ReportLost): the
// attempt it names is lost, and retried apart from its action's retries
// (workflow.Lose). It is its own command, not an AdvanceWorkflow, so that
// a node of a release before it refuses it whole rather than applying it
// as a failure.
func applyLoseAttempt(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Advance
	command.MustDecode(payload, &req, index)
	r := req.Report
	if req.Kind != AdvanceReport || r == nil || r.Kind != ReportLost {
		return nil, errs.Invalid("report.kind", "a lost attempt's command carries a report of kind %q", ReportLost)
	}
	now := req.Time
	return advanceWorkflow(tx, req.Workflow, store.Write{Index: index, Time: req.Time, By: req.By},
		func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Lose(st, r.Action, r.Attempt, r.Message, now)
		})
}

// step is the transition an agent's report makes.
func (r *Report) step(now time.Time) (step, error) {
	if r == nil {
		return nil, errs.Invalid("report", "is required")
	}
	switch r.Kind {
	case ReportStart:
		return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Start(st, r.Action, r.Attempt, now)
		}, nil
	case ReportProgress:
		return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Progress(st, r.Action, r.Attempt, r.Progress, r.Message, now)
		}, nil
	case ReportFinish:
		return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Finish(st, r.Action, r.Attempt, r.OK, r.Message, now)
		}, nil
	}
	return nil, errs.Invalid("report.kind", "%q is not one of start, progress, finish", r.Kind)
}

// advanceWorkflow applies fn, one of the workflow package's transitions,
// to workflow id's state. A step that changes nothing (a duplicate report)
// stores nothing. Otherwise it stores the new state, records one event
// per transition, and moves the machine's state with the workflow's, then
// its order. A step's error is a Conflict (or Invalid for bad input) that
// changed nothing. It returns the workflow as stored.
func advanceWorkflow(tx *store.Tx, id string, wr store.Write, fn step) (*store.Workflow, error) {
	w, err := store.Get[store.Workflow](tx, id)
	if err != nil {
		return nil, err
	}
	if w.State == nil {
		return nil, fmt.Errorf("%w: workflow %q has no state", store.ErrCorrupt, id)
	}
	st, trs, err := fn(*w.State)
	if err != nil {
		var fe *workflow.FieldError
		if errors.As(err, &fe) {
			return nil, errs.Invalid(fe.Field, "%s", fe.Message)
		}
		return nil, errs.Conflict("workflow %s: %v", id, strings.TrimPrefix(err.Error(), "workflow: "))
	}
	if len(trs) == 0 {
		return w, nil
	}
	before := w.Status()
	w.State = &st
	if err := tx.UnsafePutWorkflow(w, wr); err != nil {
		return nil, err
	}
	for _, t := range trs {
		if err := event(tx, wr, transitionEvent(w, t)); err != nil {
			return nil, err
		}
	}
	if w.Status() == before {
		return w, nil
	}
	m, err := store.Get[store.Machine](tx, w.MachineID)
	if err != nil && !errors.Is(err, errs.ErrNotFound) { // a machine may be deleted under its workflow
		return nil, err
	}
	if err == nil && m.Workflow == w.ID {
		if err := followWorkflow(tx, m, w, wr); err != nil {
			return nil, err
		}
	}
	// The order follows once the machine has.
	if w.Status().Final() && w.Order != "" {
		if err := advanceOrder(tx, w.Order, wr); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// transitionEvent is the event recording one transition.
func transitionEvent(w *store.Workflow, t workflow.Transition) store.Event {
	e := store.Event{MachineID: w.MachineID, Fields: map[string]string{
		"workflow": w.ID, "from": string(t.From), "to": string(t.To),
	}}
	switch {
	case t.Action == "":
		e.Kind = "workflow." + string(t.To)
		e.Message = fmt.Sprintf("workflow %s %s", w.ID, t.To)
		if t.Message != "" {
			e.Message += ": " + t.Message
		}
	case t.From == workflow.Running && t.To == workflow.Running:
		e.Kind = "action.progress"
		e.Message = fmt.Sprintf("%s: %d%%", t.Action, t.Progress)
		if t.Message != "" {
			e.Message += " " + t.Message
		}
		e.Fields["progress"] = fmt.Sprint(t.Progress)
	default:
		e.Kind = "action." + string(t.To)
		e.Message = fmt.Sprintf("%s %s", t.Action, t.To)
		if t.Attempt > 0 {
			e.Message += fmt.Sprintf(" (attempt %d)", t.Attempt)
		}
		if t.Message != "" {
			e.Message += ": " + t.Message
		}
	}
	if t.Action != "" {
		e.Fields["action"] = t.Action
		if a, ok := w.State.Plan.Action(t.Action); ok {
			e.Fields["type"] = a.Type
		}
	}
	if t.Attempt > 0 {
		e.Fields["attempt"] = fmt.Sprint(t.Attempt)
	}
	if len(e.Message) > 4096 {
		e.Message = e.Message[:4093] + "..."
	}
	return e
}

// followWorkflow sets machine m's state from its current workflow w and
// records the change as an event.
func followWorkflow(tx *store.Tx, m *store.Machine, w *store.Workflow, wr store.Write) error {
	state, reason := m.State, ""
	switch st := w.Status(); {
	case !st.Final() && w.Purpose == store.PurposeDeprovision:
		state = store.StateDeprovisioning
	case !st.Final():
		state = store.StateProvisioning
	case st == workflow.Succeeded && w.Purpose == store.PurposeDeprovision:
		state = store.StateReady
	case st == workflow.Succeeded:
		state = store.StateProvisioned
	default:
		state, reason = store.StateFailed, w.State.Reason
	}
	if state == m.State && reason == m.Reason && m.Workflow == w.ID {
		return nil
	}
	from := m.State
	m.State, m.Reason, m.Workflow = state, reason, w.ID
	if err := tx.UnsafePutMachine(m, store.Write{Index: wr.Index, Time: wr.Time, By: wr.By}); err != nil {
		return err
	}
	if from == state {
		return nil
	}
	msg := fmt.Sprintf("machine %s: %s → %s", m.ID, from, state)
	if reason != "" {
		msg += ": " + reason
	}
	return event(tx, wr, store.Event{
		MachineID: m.ID, Kind: "machine.state", Message: msg,
		Fields: map[string]string{"from": string(from), "to": string(state), "workflow": w.ID},
	})
}

// applyDeleteWorkflow removes a workflow that has ended; an active one
// must be cancelled first. A machine whose current workflow it was keeps
// its state; its Workflow then names no workflow.
func applyDeleteWorkflow(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Delete
	command.MustDecode(payload, &req, index)
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	w, err := store.Get[store.Workflow](tx, req.Key)
	if err != nil {
		return nil, err
	}
	if w.Active() {
		return nil, errs.Conflict("workflow %q is %s: cancel it before deleting it", req.Key, w.Status())
	}
	if err := tx.UnsafeDelete(w, req.Key, req.Expect); err != nil {
		return nil, err
	}
	return nil, appendEvents(tx, req.Events, store.Write{Index: index, Time: req.Time, By: req.By})
}

// applyBindWorkflow records the first address to claim a workflow's
// installer credential where the appliance leases no addresses
// (proxyDHCP): from then on the credential is given to, and accepted
// from, that address alone (package provision). A claim on a workflow
// that has one changes nothing and returns the workflow with the
// binding it has, so the claimant learns whether it won. An ended
// workflow takes no claim: its credential opens nothing any more.
func applyBindWorkflow(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Bind
	command.MustDecode(payload, &req, index)
	addr, err := netip.ParseAddr(req.Addr)
	if err != nil || addr.Zone() != "" || addr.Is4In6() || addr.String() != req.Addr {
		return nil, errs.Invalid("addr", "%q is not an IP address in canonical form", req.Addr)
	}
	w, err := store.Get[store.Workflow](tx, req.Workflow)
	if err != nil {
		return nil, err
	}
	switch {
	case w.BootAddr != "":
		return w, nil
	case !w.Active():
		return nil, errs.Conflict("workflow %s has ended (%s): its credential opens nothing", w.ID, w.Status())
	}
	w.BootAddr = req.Addr
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafePutWorkflow(w, wr); err != nil {
		return nil, err
	}
	return w, event(tx, wr, store.Event{
		MachineID: w.MachineID, Kind: "workflow.bound",
		Message: fmt.Sprintf("workflow %s: installer credential bound to %s, the first address to claim it", w.ID, req.Addr),
		Fields:  map[string]string{"workflow": w.ID, "addr": req.Addr},
	})
}
