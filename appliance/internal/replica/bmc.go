package replica

import (
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Order and BMC job commands. Orders are created with PutOrder (which
// creates their workflow and jobs in the same transaction); jobs are
// run by the leader: StartJob, the BMC operation, FinishJob.
const (
	PutOrder    Type = 23
	DeleteOrder Type = 24
	DeleteJob   Type = 25
	StartJob    Type = 26
	FinishJob   Type = 27
	// SetPower records a machine's power state, as the leader's poller
	// read it from the BMC.
	SetPower Type = 28
)

// JobStart is the payload of StartJob: the leader starts the attempt'th
// execution of a job, which must be over by Deadline.
type JobStart struct {
	Job      string    `json:"job"`
	Attempt  int       `json:"attempt"`
	Deadline time.Time `json:"deadline"`
	Time     time.Time `json:"time"`
}

// JobFinish is the payload of FinishJob.
type JobFinish struct {
	Job     string          `json:"job"`
	Attempt int             `json:"attempt"`
	Result  store.JobResult `json:"result"`
	Time    time.Time       `json:"time"`
}

// Power is the payload of SetPower. Expect, if not 0, is the machine's
// version when its power was read: a reading older than the machine's
// latest change (a job that powered it on or off since) is stale, and
// changes nothing.
type Power struct {
	Machine string    `json:"machine"`
	Power   string    `json:"power"`
	Expect  uint64    `json:"expect,omitempty"`
	Time    time.Time `json:"time"`
}

func applyStartJob(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req JobStart
	mustDecode(payload, &req, index)
	return tx.UnsafeStartJob(req.Job, req.Attempt, req.Deadline, store.Write{Index: index, Time: req.Time})
}

func applyFinishJob(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req JobFinish
	mustDecode(payload, &req, index)
	return tx.UnsafeFinishJob(req.Job, req.Attempt, req.Result, store.Write{Index: index, Time: req.Time})
}

func applySetPower(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Power
	mustDecode(payload, &req, index)
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
	return nil, tx.UnsafeSetPower(req.Machine, req.Power, store.Write{Index: index, Time: req.Time})
}
