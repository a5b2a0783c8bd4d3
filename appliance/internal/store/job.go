package store

import (
	"fmt"
	"time"
)

// BMC job actions.
const (
	JobPowerOn    = "power_on"
	JobPowerOff   = "power_off"
	JobPowerCycle = "power_cycle"
	// JobBootPXE sets the next boot device to the network. A BMC that
	// refuses it succeeds with a warning: the machine may boot from the
	// network by its own boot order.
	JobBootPXE = "boot_pxe"
	// JobInsertMedia has the BMC fetch the boot ISO of the job's order
	// into its virtual CD drive (the appliance serves the ISO; its URL
	// is a secret and never stored). JobBootCD sets the next boot
	// device to that CD. They boot a machine whose subnet boots from
	// virtual media (Subnet.Boot).
	JobInsertMedia = "insert_media"
	JobBootCD      = "boot_cd"
)

var jobActions = []string{JobPowerOn, JobPowerOff, JobPowerCycle, JobBootPXE, JobInsertMedia, JobBootCD}

// Job states.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Job is one operation on a machine's BMC. It is committed before it
// runs; the leader alone runs it (JobStart, then JobFinish), and its
// result is committed too. A running job whose Deadline has passed was
// abandoned (its leader died or was deposed and has given up by then): a
// leader may start it again, so it never runs twice at once.
type Job struct {
	Meta
	ID        string `json:"id"`
	MachineID string `json:"machine_id"`
	Action    string `json:"action"`
	// Persistent and EFI qualify boot_pxe: for every boot rather than
	// the next, and for UEFI rather than BIOS.
	Persistent bool `json:"persistent,omitempty"`
	EFI        bool `json:"efi,omitempty"`
	// Order is the order the job is part of, if any.
	Order string `json:"order,omitempty"`
	// Traceparent is the W3C traceparent the job's span descends from:
	// its order's (Order.Traceparent, the site's order.apply span),
	// copied when the order makes it; empty for a job made without an
	// order.
	Traceparent string `json:"traceparent,omitempty"`
	// After is the job that must end before this one starts, if any:
	// the boot device is set before the power cycle.
	After string `json:"after,omitempty"`
	State string `json:"state"`
	// Attempt counts the executions started.
	Attempt  int       `json:"attempt,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Power is the machine's power state the job left ("on", "off").
	Power   string `json:"power,omitempty"`
	Warning string `json:"warning,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (*Job) Kind() string   { return "job" }
func (j *Job) Key() string  { return j.ID }
func (*Job) bucket() []byte { return bucketJobs }

// Normalize fills defaults.
func (j *Job) Normalize() {
	if j.State == "" {
		j.State = JobPending
	}
}

// Validate checks the job on its own.
func (j *Job) Validate() error {
	if err := validName("id", j.ID); err != nil {
		return err
	}
	if err := validName("machine_id", j.MachineID); err != nil {
		return err
	}
	if err := validOneOf("action", j.Action, jobActions...); err != nil {
		return err
	}
	if err := validTraceparent("traceparent", j.Traceparent); err != nil {
		return err
	}
	return validOneOf("state", j.State, JobPending, JobRunning, JobSucceeded, JobFailed)
}

// Done reports whether the job has ended.
func (j *Job) Done() bool { return j.State == JobSucceeded || j.State == JobFailed }

// UnsafePutJob stores j and keeps the index of jobs that have not ended.
func (tx *Tx) UnsafePutJob(j *Job, wr Write) error {
	if _, err := tx.unsafePut(j, wr); err != nil {
		return err
	}
	b := tx.tx.Bucket(bucketActiveJobs)
	if j.Done() {
		return b.Delete([]byte(j.ID))
	}
	return b.Put([]byte(j.ID), nil)
}

// PendingJobs returns the jobs a leader may start at now: pending ones,
// and running ones whose deadline has passed, that do not wait for
// another job (After) that has not ended.
func (tx *Tx) PendingJobs(now time.Time) ([]*Job, error) {
	var out []*Job
	err := tx.tx.Bucket(bucketActiveJobs).ForEach(func(k, _ []byte) error {
		j, err := Get[Job](tx, string(k))
		if err != nil {
			return fmt.Errorf("%w: jobs_active names %s: %v", ErrCorrupt, k, err)
		}
		if j.State != JobPending && (j.State != JobRunning || now.Before(j.Deadline)) {
			return nil
		}
		if j.After != "" {
			if prev, err := Get[Job](tx, j.After); err == nil && !prev.Done() {
				return nil
			}
		}
		out = append(out, j)
		return nil
	})
	return out, err
}
