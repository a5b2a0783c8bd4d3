package replica

import (
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Sync commands: the sync client proposes them on the leader (see
// package syncclient).
const (
	// ApplyDesired applies one complete revision of desired state from
	// central and records it as applied, once: a revision at or below
	// the applied one changes nothing.
	ApplyDesired Type = 29
	// SyncAcked records the highest event sequence central has
	// acknowledged; it never goes back.
	SyncAcked Type = 30
)

// DesiredPayload is the payload of ApplyDesired.
type DesiredPayload struct {
	Desired store.Desired `json:"desired"`
	Time    time.Time     `json:"time"`
}

// AckedPayload is the payload of SyncAcked.
type AckedPayload struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
}

func applyApplyDesired(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DesiredPayload
	mustDecode(payload, &req, index)
	return tx.UnsafeApplyDesired(&req.Desired, store.Write{Index: index, Time: req.Time})
}

func applySyncAcked(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req AckedPayload
	mustDecode(payload, &req, index)
	return nil, tx.UnsafeSetSyncAcked(req.Seq)
}
