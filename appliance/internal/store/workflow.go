package store

import (
	"errors"
	"fmt"
	"regexp"
	"time"

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
// and Timeout; the site binds the template into State when it stores it,
// and from then on the workflow changes only through the agent's reports,
// the leader's timer and cancellation (package site).
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
	// BootAddr, where the appliance leases no addresses (proxyDHCP), is
	// the address that first claimed the workflow's installer credential:
	// the only one it is given to and accepted from (package provision).
	// The site sets it, once, through BindWorkflow; clients cannot.
	BootAddr string `json:"boot_addr,omitempty"`
	// Order is the order that made the workflow, if any; it follows the
	// workflow.
	Order string `json:"order,omitempty"`
	// Traceparent is the W3C traceparent the workflow's spans descend
	// from: its order's (Order.Traceparent, the site's order.apply span),
	// copied when the order makes it; empty for a workflow made without
	// an order: the machine's DHCP exchanges, boot fetches and metadata
	// requests while the workflow is its latest, and the installer's
	// agent's actions (given it on the kernel command line), are of its
	// trace.
	Traceparent string `json:"traceparent,omitempty"`
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
	if err := validTraceparent("traceparent", w.Traceparent); err != nil {
		return err
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

// PlanError turns the workflow package's field errors into domain errors,
// their messages after prefix.
func PlanError(prefix string, err error) error {
	var fe *workflow.FieldError
	if errors.As(err, &fe) {
		return errs.Invalid(fe.Field, "%s%s", prefix, fe.Message)
	}
	return err
}

// UnsafePutWorkflow stores w and keeps the index of active workflows.
func (tx *Tx) UnsafePutWorkflow(w *Workflow, wr Write) error {
	if _, err := tx.unsafePut(w, wr); err != nil {
		return err
	}
	return tx.indexActive(w)
}

// unsafeDeleteWorkflow removes workflow id and its entry in the index of
// active workflows.
func (tx *Tx) unsafeDeleteWorkflow(id string, expect uint64) error {
	if _, err := tx.unsafeDelete(&Workflow{}, id, expect); err != nil {
		return err
	}
	return tx.tx.Bucket(bucketActiveWF).Delete([]byte(id))
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
