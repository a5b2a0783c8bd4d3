package site

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

// Orders. Storing one does everything at once, in one transaction: the
// workflow it needs, the machine's address, and the BMC jobs that start
// the machine on it. From then on it follows them, and ends when they
// have: a provision when its workflow succeeded, a deprovision when the
// machine is wiped and powered off, a power order with its job.

// Default templates of the orders that run a workflow.
const (
	DefaultProvisionTemplate   = "install"
	DefaultDeprovisionTemplate = "wipe"
)

func applyPlaceOrder(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return applyOrder(tx, payload, index, orderRules{choose: chooseBootAddress, waits: true})
}

// orderRules are the rules of a command that creates orders: how it
// chooses a provision's address, and whether an order waits for its
// artifacts (apply_wait.go), which the commands of earlier releases
// (apply_legacy.go) did not.
type orderRules struct {
	choose addressChooser
	waits  bool
	// machineEvents: a revision's machine puts and deletes are events
	// (machine.created, machine.updated, machine.deleted) and a refused
	// order names its machine, as central's fleet model needs
	// (fleet.go); ApplyDesiredV3 and earlier recorded neither.
	machineEvents bool
}

func applyOrder(tx *store.Tx, payload []byte, index uint64, rules orderRules) (any, error) {
	var req Put[store.Order]
	command.MustDecode(payload, &req, index)
	if req.Object == nil {
		return nil, errs.Invalid("object", "is required")
	}
	o := req.Object
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	wr := store.Write{Expect: req.Expect, Index: index, Time: req.Time, By: req.By}
	if err := createOrder(tx, o, wr, rules); err != nil {
		return nil, err
	}
	return o, appendEvents(tx, req.Events, wr)
}

// createOrder stores a new order with the workflow and jobs it needs, all
// or nothing: a machine without a BMC, a machine busy with another
// workflow, a template that does not bind refuse the whole order. choose
// picks the address a provision reserves for the machine. Under rules
// that wait, an order whose artifacts no node of the site holds yet is
// stored waiting for them, without its parts (apply_wait.go).
func createOrder(tx *store.Tx, o *store.Order, wr store.Write, rules orderRules) error {
	if _, err := store.Get[store.Order](tx, o.ID); err == nil {
		return errs.Conflict("order %q exists", o.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	m, err := orderMachine(tx, o)
	if err != nil {
		return err
	}
	if !rules.waits {
		return startOrder(tx, o, m, wr, rules.choose, "order.created")
	}
	// A site upgraded from a release that kept no artifact records (its
	// images came by PutImageV1) has them from its first order on.
	if err := reconcileArtifacts(tx, wr); err != nil {
		return err
	}
	needs, err := orderNeeds(tx, o, m)
	if err != nil {
		return err
	}
	o.ImageSHA256 = needs.image
	if reason := otherImage(o, needs); reason != "" {
		return waitImage(tx, o, reason, wr)
	}
	if missing := needs.missing(tx); len(missing) > 0 {
		return waitOrder(tx, o, needs, missing, wr)
	}
	return startOrder(tx, o, m, wr, rules.choose, "order.created")
}

// orderMachine returns the machine of order o, refusing one without a
// BMC, and an order whose jobs would take the ids of an earlier order's.
func orderMachine(tx *store.Tx, o *store.Order) (*store.Machine, error) {
	m, err := store.Get[store.Machine](tx, o.MachineID)
	if err != nil {
		return nil, errs.Invalid("machine_id", "no machine %q", o.MachineID)
	}
	if m.BMC == nil {
		return nil, errs.Invalid("machine_id", "machine %q has no BMC: the appliance cannot power it", m.ID)
	}
	for _, suffix := range []string{"pxe", "cycle", "power", "off"} {
		if _, err := store.Get[store.Job](tx, o.ID+"-"+suffix); err == nil {
			return nil, errs.Conflict("job %s-%s of an earlier order %s exists: delete it or choose another order id", o.ID, suffix, o.ID)
		}
	}
	return m, nil
}

// startOrder creates order o's parts and stores it running, with the
// event kind (order.created, or order.started for one that waited).
// Nothing is written until everything is known to fit: a refusal changes
// nothing.
func startOrder(tx *store.Tx, o *store.Order, m *store.Machine, wr store.Write, choose addressChooser, kind string) error {
	var res *reservation
	var err error
	if o.Action == store.OrderProvision {
		if res, err = choose(tx, m, wr.Time); err != nil {
			return err
		}
	}
	o.State, o.Reason, o.Workflow, o.Jobs, o.WaitingFor = store.OrderRunning, "", "", nil, nil
	if err := orderParts(tx, o, m, res, wr); err != nil {
		return err
	}
	if err := tx.UnsafePut(o, wr); err != nil {
		return err
	}
	msg := fmt.Sprintf("order %s: %s machine %s", o.ID, o.Action, m.ID)
	if kind == "order.started" {
		msg = fmt.Sprintf("order %s started: its artifacts are at the site: %s machine %s", o.ID, o.Action, m.ID)
	}
	fields := map[string]string{"order": o.ID, "action": o.Action}
	if id := tracing.TraceID(o.Traceparent); id != "" {
		fields["trace_id"] = id
	}
	return event(tx, wr, store.Event{MachineID: m.ID, Kind: kind, Message: msg, Fields: fields})
}

// orderParts creates what order o needs: the workflow, the reservation
// res (if any) and the jobs of a provision or deprovision, the job of a
// power order.
func orderParts(tx *store.Tx, o *store.Order, m *store.Machine, res *reservation, wr store.Write) error {
	switch o.Action {
	case store.OrderProvision, store.OrderDeprovision:
		addr, vmedia, err := vmediaAddress(tx, m, res)
		if err != nil {
			return err
		}
		boot := pxeJobs
		if vmedia {
			if boot, err = vmediaJobIDs(tx, o); err != nil {
				return err
			}
		}
		if err := orderWorkflow(tx, o, m, addr, wr); err != nil {
			return err
		}
		if res != nil {
			if err := reserve(tx, m.ID, res, wr); err != nil {
				return err
			}
		}
		for _, j := range boot {
			if err := addJob(tx, o, j[0], j[1], wr); err != nil {
				return err
			}
		}
		return addJob(tx, o, "cycle", store.JobPowerCycle, wr)
	case store.OrderPowerOn, store.OrderPowerOff, store.OrderPowerCycle:
		action := map[string]string{store.OrderPowerOn: store.JobPowerOn, store.OrderPowerOff: store.JobPowerOff, store.OrderPowerCycle: store.JobPowerCycle}[o.Action]
		return addJob(tx, o, "power", action, wr)
	}
	return nil
}

// orderWorkflow creates the workflow of a provision or deprovision
// order, bound to bootAddr if valid (a machine booting from virtual
// media, with a static address).
func orderWorkflow(tx *store.Tx, o *store.Order, m *store.Machine, bootAddr netip.Addr, wr store.Write) error {
	w := newOrderWorkflow(o, m)
	if bootAddr.IsValid() {
		w.BootAddr = bootAddr.String()
	}
	if err := w.Validate(); err != nil {
		return err
	}
	if err := createWorkflow(tx, w, wr); err != nil {
		return err
	}
	o.Workflow = w.ID
	return nil
}

// newOrderWorkflow is the workflow order o makes for machine m, not
// stored.
func newOrderWorkflow(o *store.Order, m *store.Machine) *store.Workflow {
	w := &store.Workflow{ID: o.ID, MachineID: m.ID, Template: o.Template, Values: maps.Clone(o.Values),
		Purpose: store.PurposeProvision, Nonce: o.Nonce, Order: o.ID, Traceparent: o.Traceparent}
	if o.Action == store.OrderDeprovision {
		w.Purpose = store.PurposeDeprovision
	}
	if w.Template == "" {
		w.Template = map[string]string{store.OrderProvision: DefaultProvisionTemplate, store.OrderDeprovision: DefaultDeprovisionTemplate}[o.Action]
	}
	if o.Image != "" {
		if w.Values == nil {
			w.Values = map[string]string{}
		}
		w.Values["image"] = o.Image
	}
	return w
}

// addJob creates the order's next job, after the one before it.
func addJob(tx *store.Tx, o *store.Order, suffix, action string, wr store.Write) error {
	j := &store.Job{ID: o.ID + "-" + suffix, MachineID: o.MachineID, Action: action, Order: o.ID, EFI: o.EFI, Traceparent: o.Traceparent}
	if n := len(o.Jobs); n > 0 {
		j.After = o.Jobs[n-1]
	}
	if err := createJob(tx, j, wr); err != nil {
		return err
	}
	o.Jobs = append(o.Jobs, j.ID)
	return nil
}

// advanceOrder moves order id on from its workflow and jobs: it fails
// with the first failure (and cancels its workflow), a deprovision gets
// its power-off job once the machine is wiped, and it succeeds when
// everything it needed is done.
func advanceOrder(tx *store.Tx, id string, wr store.Write) error {
	o, err := store.Get[store.Order](tx, id)
	if err != nil || o.Done() || o.Waiting() {
		return nil // an order deleted, or ended, under its parts; a waiting one has none
	}
	var w *store.Workflow
	if o.Workflow != "" {
		if w, err = store.Get[store.Workflow](tx, o.Workflow); err != nil {
			return nil
		}
	}
	state, reason, allDone := orderProgress(tx, o, w)
	grew := false
	if state == store.OrderRunning && (w == nil || w.Status() == workflow.Succeeded) && allDone {
		if o.Action == store.OrderDeprovision && !slices.Contains(o.Jobs, o.ID+"-off") {
			j := &store.Job{ID: o.ID + "-off", MachineID: o.MachineID, Action: store.JobPowerOff, Order: o.ID, After: o.Jobs[len(o.Jobs)-1],
				Traceparent: o.Traceparent}
			if err := createJob(tx, j, wr); err != nil {
				return err
			}
			o.Jobs, grew = append(o.Jobs, j.ID), true
		} else {
			state = store.OrderSucceeded
		}
	}
	if state == o.State && !grew {
		return nil
	}
	ended := state != o.State
	o.State, o.Reason = state, reason
	if err := tx.UnsafePut(o, wr); err != nil {
		return err
	}
	if !ended {
		return nil
	}
	return endOrder(tx, o, w, wr)
}

// orderProgress is where an order's parts have got to: failed with the
// first failure, else running; and whether all its jobs are done.
func orderProgress(tx *store.Tx, o *store.Order, w *store.Workflow) (state, reason string, allDone bool) {
	state, allDone = store.OrderRunning, true
	for _, jid := range o.Jobs {
		j, err := store.Get[store.Job](tx, jid)
		if err != nil {
			continue
		}
		if j.State == store.JobFailed && state == store.OrderRunning {
			state, reason = store.OrderFailed, fmt.Sprintf("%s failed: %s", j.Action, j.Error)
		}
		allDone = allDone && j.Done()
	}
	if state == store.OrderRunning && w != nil && w.Status().Final() && w.Status() != workflow.Succeeded {
		state, reason = store.OrderFailed, fmt.Sprintf("workflow %s %s: %s", w.ID, w.Status(), w.State.Reason)
	}
	return state, reason, allDone
}

// endOrder records an order's end; a failed order cancels its workflow.
func endOrder(tx *store.Tx, o *store.Order, w *store.Workflow, wr store.Write) error {
	if o.State == store.OrderFailed && w != nil && w.Active() {
		if _, err := advanceWorkflow(tx, w.ID, wr, func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Cancel(st, "order "+o.ID+" failed: "+o.Reason, wr.Time)
		}); err != nil {
			return err
		}
	}
	msg := fmt.Sprintf("order %s %s", o.ID, o.State)
	if o.Reason != "" {
		msg += ": " + o.Reason
	}
	return event(tx, wr, store.Event{MachineID: o.MachineID, Kind: "order." + o.State, Message: msg,
		Fields: map[string]string{"order": o.ID, "action": o.Action}})
}

// applyDeleteOrder removes an order that has ended.
func applyDeleteOrder(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return applyDeleteIf(tx, payload, index, &store.Order{}, orderEnded)
}

// orderEnded refuses to delete an order that is still running; one that
// waits for its artifacts has nothing running, and may go.
func orderEnded(tx *store.Tx, key string) error {
	if o, err := store.Get[store.Order](tx, key); err == nil && !o.Done() && !o.Waiting() {
		return errs.Conflict("order %q is %s: it can be deleted once it has ended", key, o.State)
	}
	return nil
}

// applyDeleteIf deletes the object of kind's type the payload names,
// unless check refuses.
func applyDeleteIf(tx *store.Tx, payload []byte, index uint64, kind store.Object, check func(tx *store.Tx, key string) error) (any, error) {
	var req Delete
	command.MustDecode(payload, &req, index)
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	if err := check(tx, req.Key); err != nil {
		return nil, err
	}
	if err := tx.UnsafeDelete(kind, req.Key, req.Expect); err != nil {
		return nil, err
	}
	return nil, appendEvents(tx, req.Events, store.Write{Index: index, Time: req.Time, By: req.By})
}
