// Package orders places orders at central: for one machine or in bulk
// (every machine a fleet search matches), each resolved first into a
// preview of what will happen to which machine, then placed as the
// preview showed it, once confirmed. It also keeps the audit of who did
// what through central's API.
//
// This file holds the types the API, the portal and the CLI share.
package orders

import (
	"context"

	"github.com/outposthq/outpost/central/internal/store"
)

// Actions an order may ask (syncproto's order actions, with power in
// one word for people: "power" with Power on, off or cycle).
const (
	ActionProvision   = "provision"
	ActionDeprovision = "deprovision"
	ActionPower       = "power"
)

// Request asks for orders: what to do, to which machines.
type Request struct {
	// Action is provision, deprovision or power.
	Action string `json:"action"`
	// Query selects the machines (fleet search grammar); Targets names
	// them instead. A confirmation carries the Targets its preview
	// showed, so what is placed is what was previewed.
	Query   string      `json:"query,omitempty"`
	Targets []TargetRef `json:"targets,omitempty"`
	Params  OrderParams `json:"params"`
}

// TargetRef names one machine of one site.
type TargetRef struct {
	Site    string `json:"site"`
	Machine string `json:"machine"`
}

// OrderParams are what an order carries.
type OrderParams struct {
	// Image is a catalogue image's name (or the site's own image's),
	// resolved to its digest when the order is placed; Template the
	// workflow template (the site's default if empty).
	Image    string `json:"image,omitempty"`
	Template string `json:"template,omitempty"`
	// Hostname is the machine's hostname after the install (one machine
	// only); SSHKeys and UserData go to its metadata.
	Hostname string   `json:"hostname,omitempty"`
	SSHKeys  []string `json:"ssh_keys,omitempty"`
	UserData string   `json:"user_data,omitempty"`
	// Power is on, off or cycle, for a power order.
	Power string `json:"power,omitempty"`
	// EFI says the machine boots UEFI.
	EFI bool `json:"efi,omitempty"`
}

// Preview is what a request would do, machine by machine.
type Preview struct {
	Action string        `json:"action"`
	Items  []PreviewItem `json:"items"`
	// ImageSHA256 is the digest Image resolves to now.
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// Refused counts the items with a Problem: they are not placed.
	Refused int `json:"refused"`
}

// PreviewItem is one machine of a preview.
type PreviewItem struct {
	TargetRef
	Hostname string `json:"hostname,omitempty"`
	State    string `json:"state,omitempty"`
	// Will says what will happen, in words ("install debian-12
	// (sha256:ab12…)", "power cycle").
	Will string `json:"will"`
	// Offline says the site is not connected: the order will be
	// delivered when it returns.
	Offline bool `json:"offline,omitempty"`
	// Problem says why this machine's order would be refused (an
	// order still running, an image the site does not have); empty if
	// it will be placed.
	Problem string `json:"problem,omitempty"`
}

// Result is what was placed.
type Result struct {
	// Batch is the key prefix the request's orders share ("order:<batch>-*"
	// finds them).
	Batch   string        `json:"batch"`
	Placed  []Placed      `json:"placed"`
	Refused []PreviewItem `json:"refused,omitempty"`
}

// Placed is one order placed.
type Placed struct {
	TargetRef
	Order    string `json:"order"`
	Revision uint64 `json:"revision"`
	Offline  bool   `json:"offline,omitempty"`
}

// Placer is what the API and the portal place orders through.
type Placer interface {
	// Preview resolves a request without changing anything.
	Preview(ctx context.Context, req *Request) (*Preview, error)
	// Place places the orders of a request whose Targets are set (a
	// confirmed preview), as the actor by, from the address from.
	Place(ctx context.Context, by, from string, req *Request) (*Result, error)
}

// AuditEntry is one change made through central's API or portal, and
// AuditFilter selects entries: the store's own, which keeps them.
type (
	AuditEntry  = store.AuditEntry
	AuditFilter = store.AuditFilter
)

// Auditor reads the audit.
type Auditor interface {
	Audit(f AuditFilter) ([]AuditEntry, error)
}
