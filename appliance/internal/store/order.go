package store

import (
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

// Order is desired state for one machine: package site creates the
// workflow and the BMC jobs it needs when it is stored, and moves it on
// with them.
type Order struct {
	Meta
	ID string `json:"id"`
	// Action is what the order asks: provision, deprovision, power_on,
	// power_off or power_cycle.
	Action    string `json:"action"`
	MachineID string `json:"machine_id"`
	// Template, Image and Values make the workflow of provision and
	// deprovision orders (Template defaults to the site's install or wipe
	// template; Image becomes the value "image").
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
