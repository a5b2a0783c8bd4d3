package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/errs"
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
)

var jobActions = []string{JobPowerOn, JobPowerOff, JobPowerCycle, JobBootPXE}

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
	return validOneOf("state", j.State, JobPending, JobRunning, JobSucceeded, JobFailed)
}

// Done reports whether the job has ended.
func (j *Job) Done() bool { return j.State == JobSucceeded || j.State == JobFailed }

// UnsafeCreateJob stores a new pending job for a machine that has a BMC.
func (tx *Tx) UnsafeCreateJob(j *Job, wr Write) error {
	if _, err := Get[Job](tx, j.ID); err == nil {
		return errs.Conflict("job %q exists", j.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	m, err := Get[Machine](tx, j.MachineID)
	if err != nil {
		return errs.Invalid("machine_id", "no machine %q", j.MachineID)
	}
	if m.BMC == nil {
		return errs.Invalid("machine_id", "machine %q has no BMC", m.ID)
	}
	j.State, j.Attempt, j.Deadline, j.Power, j.Warning, j.Error = JobPending, 0, time.Time{}, "", "", ""
	if err := tx.putJob(j, wr); err != nil {
		return err
	}
	return tx.jobEvent(j, "bmc.job.created", fmt.Sprintf("%s queued", j.Action), wr)
}

// UnsafeStartJob marks job id running until deadline, as its attempt'th
// execution: a pending job, or a running one whose deadline has passed at
// wr.Time. Anything else is a conflict: the job is running elsewhere or
// has ended.
func (tx *Tx) UnsafeStartJob(id string, attempt int, deadline time.Time, wr Write) (*Job, error) {
	j, err := Get[Job](tx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case j.Done():
		return nil, errs.Conflict("job %s has ended (%s)", id, j.State)
	case j.State == JobRunning && wr.Time.Before(j.Deadline):
		return nil, errs.Conflict("job %s is running until %s", id, j.Deadline.Format(time.RFC3339))
	case attempt != j.Attempt+1:
		return nil, errs.Conflict("job %s: attempt %d cannot start after attempt %d", id, attempt, j.Attempt)
	}
	j.State, j.Attempt, j.Deadline = JobRunning, attempt, deadline.UTC()
	if err := tx.putJob(j, wr); err != nil {
		return nil, err
	}
	return j, tx.jobEvent(j, "bmc.job.running", fmt.Sprintf("%s running (attempt %d)", j.Action, attempt), wr)
}

// JobResult is what an execution of a job came to.
type JobResult struct {
	OK      bool   `json:"ok"`
	Power   string `json:"power,omitempty"`
	Warning string `json:"warning,omitempty"`
	Error   string `json:"error,omitempty"`
}

// UnsafeFinishJob records the result of the attempt'th execution of job
// id. A result for another attempt than the running one is a conflict and
// changes nothing. The machine's power state follows the job's, and the
// job's order, if any, advances.
func (tx *Tx) UnsafeFinishJob(id string, attempt int, r JobResult, wr Write) (*Job, error) {
	j, err := Get[Job](tx, id)
	if err != nil {
		return nil, err
	}
	if j.State != JobRunning || j.Attempt != attempt {
		return nil, errs.Conflict("job %s: attempt %d is not running (%s, attempt %d)", id, attempt, j.State, j.Attempt)
	}
	j.State, j.Power, j.Warning, j.Error = JobSucceeded, r.Power, r.Warning, r.Error
	if !r.OK {
		j.State = JobFailed
	}
	if err := tx.putJob(j, wr); err != nil {
		return nil, err
	}
	if r.Warning != "" {
		if err := tx.jobEvent(j, "bmc.warning", j.Action+": "+r.Warning, wr); err != nil {
			return nil, err
		}
	}
	msg := j.Action + " " + j.State
	if r.Error != "" {
		msg += ": " + r.Error
	}
	if err := tx.jobEvent(j, "bmc.job."+j.State, msg, wr); err != nil {
		return nil, err
	}
	if r.OK && r.Power != "" {
		if err := tx.UnsafeSetPower(j.MachineID, r.Power, wr); err != nil && !errors.Is(err, errs.ErrNotFound) {
			return nil, err
		}
	}
	if j.Order != "" {
		if err := tx.advanceOrder(j.Order, wr); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// UnsafeSetPower records machine id's power state, with an event when it
// changes.
func (tx *Tx) UnsafeSetPower(id, power string, wr Write) error {
	m, err := Get[Machine](tx, id)
	if err != nil {
		return err
	}
	if m.Power == power {
		return nil
	}
	from := m.Power
	if from == "" {
		from = "unknown"
	}
	m.Power = power
	if err := tx.UnsafePutMachine(m, wr); err != nil {
		return err
	}
	return tx.UnsafeAppendEvent(&Event{MachineID: id, Kind: "power." + power,
		Message: fmt.Sprintf("machine %s: power %s → %s", id, from, power),
		Fields:  map[string]string{"from": from, "to": power}}, wr.Index, wr.Time)
}

// putJob stores j and keeps the index of jobs that have not ended.
func (tx *Tx) putJob(j *Job, wr Write) error {
	if _, err := tx.unsafePut(j, wr); err != nil {
		return err
	}
	b := tx.tx.Bucket(bucketActiveJobs)
	if j.Done() {
		return b.Delete([]byte(j.ID))
	}
	return b.Put([]byte(j.ID), nil)
}

func (tx *Tx) jobEvent(j *Job, kind, msg string, wr Write) error {
	f := map[string]string{"job": j.ID, "action": j.Action}
	if j.Order != "" {
		f["order"] = j.Order
	}
	return tx.UnsafeAppendEvent(&Event{MachineID: j.MachineID, Kind: kind, Message: msg, Fields: f}, wr.Index, wr.Time)
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
