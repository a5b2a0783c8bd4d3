package site

import (
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// BMC jobs and power. A job is committed before it runs; the leader alone
// runs it (StartJob, the BMC operation, FinishJob), and its order follows
// it. The machine's power state follows the jobs and the leader's poller.

// createJob stores a new pending job for a machine that has a BMC.
func createJob(tx *store.Tx, j *store.Job, wr store.Write) error {
	if _, err := store.Get[store.Job](tx, j.ID); err == nil {
		return errs.Conflict("job %q exists", j.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	m, err := store.Get[store.Machine](tx, j.MachineID)
	if err != nil {
		return errs.Invalid("machine_id", "no machine %q", j.MachineID)
	}
	if m.BMC == nil {
		return errs.Invalid("machine_id", "machine %q has no BMC", m.ID)
	}
	j.State, j.Attempt, j.Deadline, j.Power, j.Warning, j.Error = store.JobPending, 0, time.Time{}, "", "", ""
	if err := tx.UnsafePutJob(j, wr); err != nil {
		return err
	}
	return jobEvent(tx, j, "bmc.job.created", fmt.Sprintf("%s queued", j.Action), wr)
}

// applyQueueBootPXE queues a boot_pxe job of its own (no order) for a
// machine that has a BMC: the job runner sets the machine's next boot to
// the network, as it does for a provision. The job's created event names
// the operator who asked.
func applyQueueBootPXE(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req BootPXE
	command.MustDecode(payload, &req, index)
	j := &store.Job{ID: req.Job, MachineID: req.Machine, Action: store.JobBootPXE, Persistent: req.Persistent,
		EFI: req.EFI, State: store.JobPending}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := createJob(tx, j, wr); err != nil {
		return nil, err
	}
	return j, nil
}

// applyStartJob marks a job running until its deadline, as its attempt'th
// execution: a pending job, or a running one whose deadline has passed at
// the command's time. Anything else is a conflict: the job is running
// elsewhere or has ended.
func applyStartJob(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return startJob(tx, payload, index, false)
}

// applyTakeOverJob starts the attempt'th execution of a job that an
// earlier leader left running (its attempt-1st): a new leader, which
// knows that leader is gone, need not wait for the attempt's deadline.
// A job that is pending, or running past its deadline, starts as by
// StartJob.
func applyTakeOverJob(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return startJob(tx, payload, index, true)
}

// startJob applies a JobStart: StartJob's, or TakeOverJob's if takeOver,
// which may also start a job still running before its deadline.
func startJob(tx *store.Tx, payload []byte, index uint64, takeOver bool) (any, error) {
	var req JobStart
	command.MustDecode(payload, &req, index)
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	j, err := store.Get[store.Job](tx, req.Job)
	if err != nil {
		return nil, err
	}
	live := j.State == store.JobRunning && wr.Time.Before(j.Deadline)
	switch {
	case j.Done():
		return nil, errs.Conflict("job %s has ended (%s)", req.Job, j.State)
	case live && !takeOver:
		return nil, errs.Conflict("job %s is running until %s", req.Job, j.Deadline.Format(time.RFC3339))
	case req.Attempt != j.Attempt+1:
		return nil, errs.Conflict("job %s: attempt %d cannot start after attempt %d", req.Job, req.Attempt, j.Attempt)
	}
	msg := fmt.Sprintf("%s running (attempt %d)", j.Action, req.Attempt)
	if live {
		msg = fmt.Sprintf("%s taken over from attempt %d, which an earlier leader left running (attempt %d)", j.Action, j.Attempt, req.Attempt)
	}
	j.State, j.Attempt, j.Deadline = store.JobRunning, req.Attempt, req.Deadline.UTC()
	if err := tx.UnsafePutJob(j, wr); err != nil {
		return nil, err
	}
	return j, jobEvent(tx, j, "bmc.job.running", msg, wr)
}

// applyFinishJob records the result of the running attempt of a job. A
// result for another attempt is a conflict and changes nothing. The
// machine's power state follows the job's, and the job's order advances.
func applyFinishJob(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req JobFinish
	command.MustDecode(payload, &req, index)
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	j, err := store.Get[store.Job](tx, req.Job)
	if err != nil {
		return nil, err
	}
	if j.State != store.JobRunning || j.Attempt != req.Attempt {
		return nil, errs.Conflict("job %s: attempt %d is not running (%s, attempt %d)", req.Job, req.Attempt, j.State, j.Attempt)
	}
	r := req.Result
	j.State, j.Power, j.Warning, j.Error = store.JobSucceeded, r.Power, r.Warning, r.Error
	if !r.OK {
		j.State = store.JobFailed
	}
	if err := tx.UnsafePutJob(j, wr); err != nil {
		return nil, err
	}
	if err := finishEvents(tx, j, r, wr); err != nil {
		return nil, err
	}
	if r.OK && r.Power != "" {
		if err := setPower(tx, j.MachineID, r.Power, wr); err != nil && !errors.Is(err, errs.ErrNotFound) {
			return nil, err
		}
	}
	if j.Order != "" {
		if err := advanceOrder(tx, j.Order, wr); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// finishEvents records a job's end, and its warning if it has one.
func finishEvents(tx *store.Tx, j *store.Job, r JobResult, wr store.Write) error {
	if r.Warning != "" {
		if err := jobEvent(tx, j, "bmc.warning", j.Action+": "+r.Warning, wr); err != nil {
			return err
		}
	}
	msg := j.Action + " " + j.State
	if r.Error != "" {
		msg += ": " + r.Error
	}
	return jobEvent(tx, j, "bmc.job."+j.State, msg, wr)
}

func applySetPower(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Power
	command.MustDecode(payload, &req, index)
	if req.Power != "on" && req.Power != "off" {
		return nil, errs.Invalid("power", "%q is not on or off", req.Power)
	}
	if req.Expect != 0 {
		m, err := store.Get[store.Machine](tx, req.Machine)
		if err != nil {
			return nil, err
		}
		if m.Version != req.Expect {
			return nil, nil // a stale reading
		}
	}
	return nil, setPower(tx, req.Machine, req.Power, store.Write{Index: index, Time: req.Time, By: req.By})
}

// setPower records machine id's power state, with an event when it
// changes.
func setPower(tx *store.Tx, id, power string, wr store.Write) error {
	m, err := store.Get[store.Machine](tx, id)
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
	return event(tx, wr, store.Event{MachineID: id, Kind: "power." + power,
		Message: fmt.Sprintf("machine %s: power %s → %s", id, from, power),
		Fields:  map[string]string{"from": from, "to": power}})
}

func jobEvent(tx *store.Tx, j *store.Job, kind, msg string, wr store.Write) error {
	f := map[string]string{"job": j.ID, "action": j.Action}
	if j.Order != "" {
		f["order"] = j.Order
	}
	return event(tx, wr, store.Event{MachineID: j.MachineID, Kind: kind, Message: msg, Fields: f})
}

// applyDeleteJob removes a job that has ended.
func applyDeleteJob(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return applyDeleteIf(tx, payload, index, &store.Job{}, func(tx *store.Tx, key string) error {
		if j, err := store.Get[store.Job](tx, key); err == nil && !j.Done() {
			return errs.Conflict("job %q is %s: it can be deleted once it has ended", key, j.State)
		}
		return nil
	})
}
