package store

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

// What a workflow does to its machine, which decides the states the
// machine goes through.
const (
	PurposeProvision   = "provision"   // provisioning → provisioned, or failed
	PurposeDeprovision = "deprovision" // deprovisioning → ready, or failed
)

// Workflow binds a template to a machine with the values it needs. Clients
// create one with ID, MachineID, Template, Values and optionally Purpose
// and Timeout; the appliance binds the template into State when it stores
// it, and from then on the workflow changes only through the agent's
// reports, the leader's timer and cancellation (UnsafeAdvanceWorkflow).
type Workflow struct {
	Meta
	ID        string            `json:"id"`
	MachineID string            `json:"machine_id"`
	Template  string            `json:"template"`
	Values    map[string]string `json:"values,omitempty"`
	Purpose   string            `json:"purpose,omitempty"`
	// Timeout, if set, bounds the whole workflow from its creation.
	Timeout Duration `json:"timeout,omitempty"`
	// Nonce is drawn by the appliance when the workflow is created; the
	// agent's credential is derived from it and the site key, so a
	// workflow made again under the same id gets a new credential.
	Nonce string `json:"nonce,omitempty"`
	// Order is the order that made the workflow, if any; it follows the
	// workflow.
	Order string `json:"order,omitempty"`
	// State is the plan and the state of each action; nil until stored.
	State *workflow.State `json:"state,omitempty"`
}

func (*Workflow) Kind() string   { return "workflow" }
func (w *Workflow) Key() string  { return w.ID }
func (*Workflow) bucket() []byte { return bucketWorkflows }

// Normalize fills defaults.
func (w *Workflow) Normalize() {
	if w.Purpose == "" {
		w.Purpose = PurposeProvision
	}
}

// Status is the workflow's status: pending until it is stored.
func (w *Workflow) Status() workflow.Status {
	if w.State == nil {
		return workflow.Pending
	}
	return w.State.Status
}

// Active reports whether the workflow has not ended.
func (w *Workflow) Active() bool { return !w.Status().Final() }

// Validate checks the workflow on its own.
func (w *Workflow) Validate() error {
	if err := validName("id", w.ID); err != nil {
		return err
	}
	if err := validName("machine_id", w.MachineID); err != nil {
		return err
	}
	if err := validName("template", w.Template); err != nil {
		return err
	}
	if err := validOneOf("purpose", w.Purpose, PurposeProvision, PurposeDeprovision); err != nil {
		return err
	}
	if w.Timeout < 0 {
		return errs.Invalid("timeout", "must not be negative")
	}
	for k := range w.Values {
		if !valueNameRE.MatchString(k) {
			return errs.Invalid("values."+k, "value names are letters, digits and '_', starting with a letter")
		}
	}
	if w.State != nil {
		if err := w.State.Validate(); err != nil {
			return errs.Invalid("state", "%v", err)
		}
	}
	return nil
}

// valueNameRE is what a workflow value's name must look like, so that a
// template can name it as {{ .name }}.
var valueNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)

// actionTypes maps each action type the agent runs to its required
// arguments, for workflow.NewPlan.
var actionTypes = func() map[string][]string {
	m := make(map[string][]string, len(actions.Catalogue))
	for t, spec := range actions.Catalogue {
		m[t] = spec.Required
	}
	return m
}()

// UnsafeCreateWorkflow stores a new workflow: it binds the template's
// actions with the workflow's values (filling in the well-known ones),
// resolves the site images that image.write actions name, builds the plan
// and its initial state, and makes it the machine's current workflow,
// whose state the machine now follows. It refuses a workflow that exists,
// a missing machine or template, a machine whose current workflow has not
// ended, and a plan that does not bind or validate, naming the field.
func (tx *Tx) UnsafeCreateWorkflow(w *Workflow, wr Write) error {
	if _, err := Get[Workflow](tx, w.ID); err == nil {
		return errs.Conflict("workflow %q exists: a workflow changes only through its agent's reports, its timer and cancel", w.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	m, err := Get[Machine](tx, w.MachineID)
	if err != nil {
		return errs.Invalid("machine_id", "no machine %q", w.MachineID)
	}
	if m.Workflow != "" {
		cur, err := Get[Workflow](tx, m.Workflow)
		if err == nil && cur.Active() {
			return errs.Conflict("machine %q is running workflow %q (%s): cancel it first", m.ID, cur.ID, cur.Status())
		}
	}
	t, err := Get[Template](tx, w.Template)
	if err != nil {
		return errs.Invalid("template", "no template %q", w.Template)
	}
	w.Values = maps.Clone(w.Values)
	if w.Values == nil {
		w.Values = map[string]string{}
	}
	defaults := map[string]string{
		actions.ValueMachineID: m.ID,
		actions.ValueHostname:  cmp(m.Hostname, m.ID),
	}
	for k, v := range defaults {
		if _, ok := w.Values[k]; !ok {
			w.Values[k] = v
		}
	}
	bound, err := workflow.Bind(t.planActions(), w.Values)
	if err != nil {
		return planError("template "+t.Name+": ", err)
	}
	for i := range bound {
		if err := tx.resolveImage(i, &bound[i]); err != nil {
			return err
		}
	}
	plan, err := workflow.NewPlan(bound, actionTypes)
	if err != nil {
		return planError("template "+t.Name+": ", err)
	}
	var deadline time.Time
	if w.Timeout > 0 {
		deadline = wr.Time.Add(time.Duration(w.Timeout))
	}
	st := workflow.NewState(plan, deadline)
	w.State = &st
	if _, err := tx.unsafePut(w, wr); err != nil {
		return err
	}
	if err := tx.indexActive(w); err != nil {
		return err
	}
	if err := tx.UnsafeAppendEvent(&Event{
		MachineID: m.ID, Kind: "workflow.created",
		Message: fmt.Sprintf("workflow %s created from template %s (%d actions)", w.ID, t.Name, len(bound)),
		Fields:  map[string]string{"workflow": w.ID, "template": t.Name, "purpose": w.Purpose},
	}, wr.Index, wr.Time); err != nil {
		return err
	}
	return tx.followWorkflow(m, w, wr)
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// planError turns the workflow package's field errors into the store's.
func planError(prefix string, err error) error {
	var fe *workflow.FieldError
	if errors.As(err, &fe) {
		return errs.Invalid(fe.Field, "%s%s", prefix, fe.Message)
	}
	return err
}

// resolveImage fills in url, sha256 and format of an image.write action
// that names a site image, so the plan records exactly what is written.
func (tx *Tx) resolveImage(i int, a *workflow.Action) error {
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
	img, err := Get[Image](tx, name)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return errs.Invalid(f+"image", "no image %q", name)
	case err != nil:
		return err
	case img.Type != ImageOS:
		return errs.Invalid(f+"image", "image %q is an %s, not an os image", name, img.Type)
	case img.SHA256 == "":
		return errs.Invalid(f+"image", "image %q has no sha256: the agent could not verify it", name)
	}
	if img.File != "" {
		a.Args["url"] = "/artifacts/" + strings.TrimPrefix(img.File, "/")
	} else {
		a.Args["url"] = img.URL
	}
	a.Args["sha256"] = img.SHA256
	if a.Args["format"] == "" {
		a.Args["format"] = img.Format
	}
	return nil
}

// UnsafeAdvanceWorkflow applies step, one of the workflow package's
// transitions, to workflow id's state. A step that changes nothing (a
// duplicate report) stores nothing. Otherwise it stores the new state,
// records one event per transition, and moves the machine's state with
// the workflow's. A step's error is a Conflict (or Invalid for bad input)
// that changed nothing. It returns the workflow as stored.
func (tx *Tx) UnsafeAdvanceWorkflow(id string, wr Write, step func(workflow.State) (workflow.State, []workflow.Transition, error)) (*Workflow, error) {
	w, err := Get[Workflow](tx, id)
	if err != nil {
		return nil, err
	}
	if w.State == nil {
		return nil, fmt.Errorf("%w: workflow %q has no state", ErrCorrupt, id)
	}
	st, trs, err := step(*w.State)
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
	if _, err := tx.unsafePut(w, wr); err != nil {
		return nil, err
	}
	if err := tx.indexActive(w); err != nil {
		return nil, err
	}
	for _, t := range trs {
		e := transitionEvent(w, t)
		if err := tx.UnsafeAppendEvent(&e, wr.Index, wr.Time); err != nil {
			return nil, err
		}
	}
	if w.Status() != before {
		m, err := Get[Machine](tx, w.MachineID)
		if err != nil && !errors.Is(err, errs.ErrNotFound) { // a machine may be deleted under its workflow
			return nil, err
		}
		if err == nil && m.Workflow == w.ID {
			if err := tx.followWorkflow(m, w, wr); err != nil {
				return nil, err
			}
		}
	}
	// The order follows once the machine has.
	if w.Status() != before && w.Status().Final() && w.Order != "" {
		if err := tx.advanceOrder(w.Order, wr); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// transitionEvent is the event recording one transition.
func transitionEvent(w *Workflow, t workflow.Transition) Event {
	e := Event{MachineID: w.MachineID, Fields: map[string]string{
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
func (tx *Tx) followWorkflow(m *Machine, w *Workflow, wr Write) error {
	state, reason := m.State, ""
	switch st := w.Status(); {
	case !st.Final() && w.Purpose == PurposeDeprovision:
		state = StateDeprovisioning
	case !st.Final():
		state = StateProvisioning
	case st == workflow.Succeeded && w.Purpose == PurposeDeprovision:
		state = StateReady
	case st == workflow.Succeeded:
		state = StateProvisioned
	default:
		state, reason = StateFailed, w.State.Reason
	}
	if state == m.State && reason == m.Reason && m.Workflow == w.ID {
		return nil
	}
	from := m.State
	m.State, m.Reason, m.Workflow = state, reason, w.ID
	if err := tx.UnsafePutMachine(m, Write{Index: wr.Index, Time: wr.Time}); err != nil {
		return err
	}
	if from == state {
		return nil
	}
	msg := fmt.Sprintf("machine %s: %s → %s", m.ID, from, state)
	if reason != "" {
		msg += ": " + reason
	}
	return tx.UnsafeAppendEvent(&Event{
		MachineID: m.ID, Kind: "machine.state", Message: msg,
		Fields: map[string]string{"from": string(from), "to": string(state), "workflow": w.ID},
	}, wr.Index, wr.Time)
}

// UnsafeDeleteWorkflow removes a workflow that has ended; an active one
// must be cancelled first. A machine whose current workflow it was keeps
// its state; its Workflow then names no workflow.
func (tx *Tx) UnsafeDeleteWorkflow(id string, expect uint64) error {
	w, err := Get[Workflow](tx, id)
	if err != nil {
		return err
	}
	if w.Active() {
		return errs.Conflict("workflow %q is %s: cancel it before deleting it", id, w.Status())
	}
	_, err = tx.unsafeDelete(w, id, expect)
	return err
}

// indexActive keeps w's entry in the index of active workflows: its next
// tick while it is active, nothing once it has ended.
func (tx *Tx) indexActive(w *Workflow) error {
	b := tx.tx.Bucket(bucketActiveWF)
	if !w.Active() {
		return b.Delete([]byte(w.ID))
	}
	var next []byte
	if t := workflow.NextTick(*w.State); !t.IsZero() {
		next = []byte(t.UTC().Format(time.RFC3339Nano))
	}
	return b.Put([]byte(w.ID), next)
}

// DueWorkflows returns the ids of the active workflows whose next tick
// (an action's timeout, the workflow's deadline) is at or before now, from
// the index, without reading the workflows.
func (tx *Tx) DueWorkflows(now time.Time) ([]string, error) {
	var due []string
	err := tx.tx.Bucket(bucketActiveWF).ForEach(func(k, v []byte) error {
		if len(v) == 0 {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, string(v))
		if err != nil {
			return fmt.Errorf("%w: workflows_active/%s: %v", ErrCorrupt, k, err)
		}
		if !now.Before(t) {
			due = append(due, string(k))
		}
		return nil
	})
	return due, err
}
