package syncproto

import (
	"encoding/hex"
	"strings"
)

// Order actions.
const (
	// OrderProvision installs an image on a machine through a workflow.
	OrderProvision = "provision"
	// OrderDeprovision wipes a machine, then powers it off.
	OrderDeprovision = "deprovision"
	OrderPowerOn     = "power_on"
	OrderPowerOff    = "power_off"
	OrderPowerCycle  = "power_cycle"
)

// Values of a provision order that reach the machine: the site's
// workflow carries an order's Values, and its metadata service shows
// these to the machine it installs (hostname, public keys, user-data).
const (
	OrderValueHostname = "hostname"
	// OrderValueSSHKeys holds public keys, one per line.
	OrderValueSSHKeys = "ssh_keys"
	// OrderValueUserData is cloud-init user-data, served verbatim.
	OrderValueUserData = "user_data"
)

// OrderActions lists the actions an order may ask.
var OrderActions = []string{OrderProvision, OrderDeprovision, OrderPowerOn, OrderPowerOff, OrderPowerCycle}

// Order is what central asks of one machine of a site. An order never
// changes once placed: the site runs it once.
type Order struct {
	ID        string `json:"id"`
	Action    string `json:"action"`
	MachineID string `json:"machine_id"`
	// Template, Image and Values make the workflow of a provision or
	// deprovision order (the site chooses the template if none is
	// named; Image becomes the workflow value "image").
	Template string            `json:"template,omitempty"`
	Image    string            `json:"image,omitempty"`
	Values   map[string]string `json:"values,omitempty"`
	// EFI says the machine boots UEFI, for the boot device it is set to.
	EFI bool `json:"efi,omitempty"`
	// ImageSHA256, if set, is the digest central resolved Image to when
	// the order was placed: the site installs exactly that image, and
	// an order whose image at the site is another waits, saying so,
	// until the site's image is that one (optional: older sites ignore
	// it).
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// Traceparent, if set, is the W3C traceparent of central's span of
	// placing the order (optional, 2026-12-07): the site's spans of the
	// order, from its applying to the installed OS's first metadata
	// request, are of that trace.
	Traceparent string `json:"traceparent,omitempty"`
}

func (*Order) Kind() string        { return KindOrder }
func (o *Order) Key() string       { return o.ID }
func (o *Order) keyField() *string { return &o.ID }

// Validate checks the order (see Object).
func (o *Order) Validate() error {
	if err := objectName(KindOrder, "id", o.ID); err != nil {
		return err
	}
	if err := oneOf(KindOrder, "action", o.Action, OrderActions...); err != nil {
		return err
	}
	if err := objectName(KindOrder, "machine_id", o.MachineID); err != nil {
		return err
	}
	if o.Template != "" {
		if err := objectName(KindOrder, "template", o.Template); err != nil {
			return err
		}
	}
	if o.Action == OrderProvision && o.Image == "" && o.Values["image"] == "" {
		return invalid(KindOrder, "image", "a provision order names the image to install")
	}
	if b, err := hex.DecodeString(o.ImageSHA256); o.ImageSHA256 != "" && (err != nil || len(b) != 32) {
		return invalid(KindOrder, "image_sha256", "must be 64 hexadecimal digits")
	}
	if o.Traceparent != "" && !validTraceparent(o.Traceparent) {
		return invalid(KindOrder, "traceparent", "must be a W3C traceparent, 00-<32 hex>-<16 hex>-<2 hex>, with ids that are not zero")
	}
	return nil
}

// validTraceparent checks W3C trace context's version 00 form.
func validTraceparent(tp string) bool {
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" {
		return false
	}
	for i, n := range []int{2, 32, 16, 2} {
		if len(parts[i]) != n || strings.Trim(parts[i], "0123456789abcdef") != "" {
			return false
		}
	}
	return strings.Trim(parts[1], "0") != "" && strings.Trim(parts[2], "0") != ""
}
