package store

import (
	"regexp"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
)

// Order actions, as the appliance names them.
const (
	OrderProvision   = "provision"
	OrderDeprovision = "deprovision"
	OrderPowerOn     = "power_on"
	OrderPowerOff    = "power_off"
	OrderPowerCycle  = "power_cycle"
)

var orderActions = []string{OrderProvision, OrderDeprovision, OrderPowerOn, OrderPowerOff, OrderPowerCycle}

// Order is what central asks of one machine of a site: the object of a
// desired change of kind "order", in the JSON shape of the appliance's
// store.Order, which the site applies.
type Order struct {
	ID        string            `json:"id"`
	Action    string            `json:"action"`
	MachineID string            `json:"machine_id"`
	Template  string            `json:"template,omitempty"`
	Image     string            `json:"image,omitempty"`
	Values    map[string]string `json:"values,omitempty"`
	EFI       bool              `json:"efi,omitempty"`
}

// nameRE is the appliance's rule for an object name.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)

func validName(field, v string) error {
	if v == "" {
		return errs.Invalid(field, "is required")
	}
	if !nameRE.MatchString(v) {
		return errs.Invalid(field, "%q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", v)
	}
	return nil
}

// Validate checks the order as the appliance will.
func (o *Order) Validate() error {
	if err := validName("id", o.ID); err != nil {
		return err
	}
	if !slices.Contains(orderActions, o.Action) {
		return errs.Invalid("action", "%q is not one of %s", o.Action, strings.Join(orderActions, ", "))
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
	return nil
}
