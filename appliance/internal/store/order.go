package store

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

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
	// OrderWaiting: the order's image (or its installer) is an artifact
	// no node of the site holds yet; it has no workflow, jobs or address
	// until the artifact arrives, and then runs (package site).
	OrderWaiting   = "waiting"
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
	// ImageSHA256 is the exact digest the order's workflow writes (its
	// first image.write), as resolved when the order was placed: a name
	// may later point elsewhere.
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// ImageWanted is the digest the order asks its image to be (central
	// resolved the image's name to it: syncproto.Order.ImageSHA256): an
	// order whose image at the site is another waits until it is that
	// one. Empty: the image as named, whatever its digest.
	ImageWanted string `json:"image_wanted,omitempty"`
	// WaitingFor lists the artifacts (digests) a waiting order waits
	// for: those no node of the site holds yet.
	WaitingFor []string `json:"waiting_for,omitempty"`
	// Traceparent is the W3C traceparent of the site's order.apply span
	// of the order (its proposal to its applying), which the proposer
	// starts before proposing: a child of central's order.place span
	// when the order came from central (syncproto.Order.Traceparent, the
	// value it arrives with), of the API request's span when placed at
	// the site, a root otherwise. The order's workflow and BMC jobs get
	// it as theirs, so their spans descend from it.
	Traceparent string `json:"traceparent,omitempty"`
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
	if b, err := hex.DecodeString(o.ImageWanted); o.ImageWanted != "" && (err != nil || len(b) != 32) {
		return errs.Invalid("image_sha256", "must be 64 hexadecimal digits")
	}
	if err := validTraceparent("traceparent", o.Traceparent); err != nil {
		return err
	}
	if o.State != "" {
		return validOneOf("state", o.State, OrderWaiting, OrderRunning, OrderSucceeded, OrderFailed)
	}
	return nil
}

// Done reports whether the order has ended.
func (o *Order) Done() bool { return o.State == OrderSucceeded || o.State == OrderFailed }

// Waiting reports whether the order waits for its artifacts.
func (o *Order) Waiting() bool { return o.State == OrderWaiting }

// indexWaiting keeps o's entry in the index of waiting orders: the index
// it first waited at, while it waits; nothing otherwise.
func (tx *Tx) indexWaiting(o *Order, index uint64) error {
	b := tx.tx.Bucket(bucketWaitingOrd)
	if !o.Waiting() {
		return b.Delete([]byte(o.ID))
	}
	if b.Get([]byte(o.ID)) != nil {
		return nil
	}
	return b.Put([]byte(o.ID), u64(index))
}

// WaitingOrders returns the orders that wait for their artifacts, in the
// order they were placed.
func (tx *Tx) WaitingOrders() ([]*Order, error) {
	type entry struct {
		id    string
		index uint64
	}
	var ids []entry
	_ = tx.tx.Bucket(bucketWaitingOrd).ForEach(func(k, v []byte) error {
		ids = append(ids, entry{string(k), readU64(v)})
		return nil
	})
	slices.SortFunc(ids, func(a, b entry) int {
		if a.index != b.index {
			return cmp.Compare(a.index, b.index)
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]*Order, 0, len(ids))
	for _, e := range ids {
		o, err := Get[Order](tx, e.id)
		if err != nil {
			return nil, fmt.Errorf("%w: waiting order %s: %v", ErrCorrupt, e.id, err)
		}
		out = append(out, o)
	}
	return out, nil
}
