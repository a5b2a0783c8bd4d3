package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

// Order kinds: what an operator (or central) asks of a machine.
const (
	// OrderProvision installs an image: an address reserved for the
	// machine's boot interface (unless it has one), a workflow from the
	// template, the next boot set to the network, a power cycle.
	OrderProvision = "provision"
	// OrderDeprovision wipes the machine with a deprovision workflow,
	// then powers it off.
	OrderDeprovision = "deprovision"
	OrderPowerOn     = "power_on"
	OrderPowerOff    = "power_off"
	OrderPowerCycle  = "power_cycle"
)

var orderKinds = []string{OrderProvision, OrderDeprovision, OrderPowerOn, OrderPowerOff, OrderPowerCycle}

// Order states.
const (
	OrderRunning   = "running"
	OrderSucceeded = "succeeded"
	OrderFailed    = "failed"
)

// Default templates of the orders that run a workflow.
const (
	DefaultProvisionTemplate   = "install"
	DefaultDeprovisionTemplate = "wipe"
)

// Order is desired state for one machine. Storing it does everything at
// once, in one transaction: the workflow it needs and the BMC jobs that
// start the machine on it. From then on it follows them, and ends when
// they have: a provision when its workflow succeeded, a deprovision when
// the machine is wiped and powered off, a power order with its job.
type Order struct {
	Meta
	ID string `json:"id"`
	// Action is what the order asks: provision, deprovision, power_on,
	// power_off or power_cycle.
	Action    string `json:"action"`
	MachineID string `json:"machine_id"`
	// Template, Image and Values make the workflow of provision and
	// deprovision orders (Template defaults to DefaultProvisionTemplate
	// or DefaultDeprovisionTemplate; Image becomes the value "image").
	Template string            `json:"template,omitempty"`
	Image    string            `json:"image,omitempty"`
	Values   map[string]string `json:"values,omitempty"`
	// EFI says the machine boots UEFI, for the boot device it is set to.
	EFI bool `json:"efi,omitempty"`
	// Nonce is the workflow's (see Workflow.Nonce).
	Nonce string `json:"nonce,omitempty"`

	// Set by the appliance.
	State    string   `json:"state,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Workflow string   `json:"workflow,omitempty"`
	Jobs     []string `json:"jobs,omitempty"`
}

func (*Order) Kind() string   { return "order" }
func (o *Order) Key() string  { return o.ID }
func (*Order) bucket() []byte { return bucketOrders }

// Validate checks the order on its own.
func (o *Order) Validate() error {
	if err := validName("id", o.ID); err != nil {
		return err
	}
	if err := validOneOf("action", o.Action, orderKinds...); err != nil {
		return err
	}
	if err := validName("machine_id", o.MachineID); err != nil {
		return err
	}
	if o.Template != "" {
		if err := validName("template", o.Template); err != nil {
			return err
		}
	}
	if o.Action == OrderProvision && o.Image == "" && o.Values["image"] == "" {
		return errs.Invalid("image", "a provision order names the image to install")
	}
	if o.State != "" {
		return validOneOf("state", o.State, OrderRunning, OrderSucceeded, OrderFailed)
	}
	return nil
}

// Done reports whether the order has ended.
func (o *Order) Done() bool { return o.State == OrderSucceeded || o.State == OrderFailed }

// WithBootValues returns values with boot_url and metadata_url set to
// bootURL, where the installer and the installed OS reach the appliance,
// unless values gives them. Every appliance knows its own boot URL (it is
// configuration), so the node that proposes a workflow fills them in.
func WithBootValues(values map[string]string, bootURL string) map[string]string {
	if bootURL == "" {
		return values
	}
	out := maps.Clone(values)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range []string{actions.ValueBootURL, actions.ValueMetadataURL} {
		if _, ok := out[k]; !ok {
			out[k] = bootURL
		}
	}
	return out
}

// UnsafeCreateOrder stores a new order with the workflow and jobs it
// needs, all or nothing: a machine without a BMC, a machine busy with
// another workflow, a template that does not bind refuse the whole order.
func (tx *Tx) UnsafeCreateOrder(o *Order, wr Write) error {
	if _, err := Get[Order](tx, o.ID); err == nil {
		return errs.Conflict("order %q exists", o.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	m, err := Get[Machine](tx, o.MachineID)
	if err != nil {
		return errs.Invalid("machine_id", "no machine %q", o.MachineID)
	}
	if m.BMC == nil {
		return errs.Invalid("machine_id", "machine %q has no BMC: the appliance cannot power it", m.ID)
	}
	// Nothing is written until everything is known to fit: a refused
	// command must change nothing.
	for _, suffix := range []string{"pxe", "cycle", "power", "off"} {
		if _, err := Get[Job](tx, o.ID+"-"+suffix); err == nil {
			return errs.Conflict("job %s-%s of an earlier order %s exists: delete it or choose another order id", o.ID, suffix, o.ID)
		}
	}
	var reservation *addressReservation
	if o.Action == OrderProvision {
		if reservation, err = tx.chooseBootAddress(m, wr.Time); err != nil {
			return err
		}
	}
	o.State, o.Reason, o.Workflow, o.Jobs = OrderRunning, "", "", nil
	job := func(suffix, action string) error {
		j := &Job{ID: o.ID + "-" + suffix, MachineID: m.ID, Action: action, Order: o.ID, EFI: o.EFI}
		if n := len(o.Jobs); n > 0 {
			j.After = o.Jobs[n-1]
		}
		if err := tx.UnsafeCreateJob(j, wr); err != nil {
			return err
		}
		o.Jobs = append(o.Jobs, j.ID)
		return nil
	}
	switch o.Action {
	case OrderProvision, OrderDeprovision:
		w := &Workflow{ID: o.ID, MachineID: m.ID, Template: o.Template, Values: maps.Clone(o.Values),
			Purpose: PurposeProvision, Nonce: o.Nonce, Order: o.ID}
		if o.Action == OrderDeprovision {
			w.Purpose = PurposeDeprovision
		}
		if w.Template == "" {
			w.Template = map[string]string{OrderProvision: DefaultProvisionTemplate, OrderDeprovision: DefaultDeprovisionTemplate}[o.Action]
		}
		if o.Image != "" {
			if w.Values == nil {
				w.Values = map[string]string{}
			}
			w.Values["image"] = o.Image
		}
		if err := w.Validate(); err != nil {
			return err
		}
		if err := tx.UnsafeCreateWorkflow(w, wr); err != nil {
			return err
		}
		o.Workflow = w.ID
		if reservation != nil {
			if err := tx.applyReservation(m.ID, reservation, wr); err != nil {
				return err
			}
		}
		if err := job("pxe", JobBootPXE); err != nil {
			return err
		}
		if err := job("cycle", JobPowerCycle); err != nil {
			return err
		}
	case OrderPowerOn, OrderPowerOff, OrderPowerCycle:
		if err := job("power", map[string]string{OrderPowerOn: JobPowerOn, OrderPowerOff: JobPowerOff, OrderPowerCycle: JobPowerCycle}[o.Action]); err != nil {
			return err
		}
	}
	if _, err := tx.unsafePut(o, wr); err != nil {
		return err
	}
	return tx.UnsafeAppendEvent(&Event{MachineID: m.ID, Kind: "order.created",
		Message: fmt.Sprintf("order %s: %s machine %s", o.ID, o.Action, m.ID),
		Fields:  map[string]string{"order": o.ID, "action": o.Action}}, wr.Index, wr.Time)
}

// advanceOrder moves order id on from its workflow and jobs: it fails
// with the first failure (and cancels its workflow), a deprovision gets
// its power-off job once the machine is wiped, and it succeeds when
// everything it needed is done.
func (tx *Tx) advanceOrder(id string, wr Write) error {
	o, err := Get[Order](tx, id)
	if err != nil || o.Done() {
		return nil // an order deleted, or ended, under its parts
	}
	var w *Workflow
	if o.Workflow != "" {
		if w, err = Get[Workflow](tx, o.Workflow); err != nil {
			return nil
		}
	}
	state, reason := OrderRunning, ""
	allDone := true
	for _, jid := range o.Jobs {
		j, err := Get[Job](tx, jid)
		if err != nil {
			continue
		}
		if j.State == JobFailed && state == OrderRunning {
			state, reason = OrderFailed, fmt.Sprintf("%s failed: %s", j.Action, j.Error)
		}
		allDone = allDone && j.Done()
	}
	if state == OrderRunning && w != nil && w.Status().Final() && w.Status() != workflow.Succeeded {
		state, reason = OrderFailed, fmt.Sprintf("workflow %s %s: %s", w.ID, w.Status(), w.State.Reason)
	}
	grew := false
	if state == OrderRunning && (w == nil || w.Status() == workflow.Succeeded) && allDone {
		if o.Action == OrderDeprovision && !slices.Contains(o.Jobs, o.ID+"-off") {
			j := &Job{ID: o.ID + "-off", MachineID: o.MachineID, Action: JobPowerOff, Order: o.ID, After: o.Jobs[len(o.Jobs)-1]}
			if err := tx.UnsafeCreateJob(j, wr); err != nil {
				return err
			}
			o.Jobs, grew = append(o.Jobs, j.ID), true
		} else {
			state = OrderSucceeded
		}
	}
	if state == o.State && !grew {
		return nil
	}
	ended := state != o.State
	o.State, o.Reason = state, reason
	if _, err := tx.unsafePut(o, wr); err != nil {
		return err
	}
	if !ended {
		return nil
	}
	if state == OrderFailed && w != nil && w.Active() {
		if _, err := tx.UnsafeAdvanceWorkflow(w.ID, wr, func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Cancel(st, "order "+o.ID+" failed: "+reason, wr.Time)
		}); err != nil {
			return err
		}
	}
	msg := fmt.Sprintf("order %s %s", o.ID, state)
	if reason != "" {
		msg += ": " + reason
	}
	return tx.UnsafeAppendEvent(&Event{MachineID: o.MachineID, Kind: "order." + state, Message: msg,
		Fields: map[string]string{"order": o.ID, "action": o.Action}}, wr.Index, wr.Time)
}
