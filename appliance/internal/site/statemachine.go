package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// table dispatches every command the site's log carries to the function
// that applies it. It grows with the list in command.go.
var table = command.Table[*store.Tx]{
	PutMachine:           applyPutMachine,
	DeleteMachine:        applyDelete[store.Machine],
	PutSubnetV1:          applyPut[store.Subnet],
	DeleteSubnet:         applyDelete[store.Subnet],
	PutLease:             applyPutLease,
	DeleteLease:          applyDelete[store.Lease],
	PutImageV1:           applyPut[store.Image],
	DeleteImageV1:        applyDelete[store.Image],
	PutTemplate:          applyPut[store.Template],
	DeleteTemplate:       applyDelete[store.Template],
	PutWorkflow:          applyPutWorkflow,
	DeleteWorkflow:       applyDeleteWorkflow,
	AppendEvents:         applyEvents,
	PutSettings:          applyPut[store.Settings],
	PutMember:            applyPut[store.Member],
	DeleteMember:         applyDelete[store.Member],
	PutTokenV1:           applyPutTokenV1,
	DeleteToken:          applyDelete[store.Token],
	AdvanceWorkflow:      applyAdvanceWorkflow,
	DiscoverV1:           applyDiscoverV1,
	DiscoverV2:           applyDiscoverV2,
	Discover:             applyDiscover,
	PutOrderV1:           applyPutOrderV1,
	DeleteOrder:          applyDeleteOrder,
	DeleteJob:            applyDeleteJob,
	StartJob:             applyStartJob,
	FinishJob:            applyFinishJob,
	SetPower:             applySetPower,
	ApplyDesiredV1:       applyDesiredV1,
	AckEvents:            applyAckEvents,
	CommitLease:          applyCommitLease,
	PlaceOrderV2:         applyPlaceOrderV2,
	ApplyDesiredV2:       applyDesiredV2,
	CreateToken:          applyCreateToken,
	RecordBMCCertificate: applyRecordBMCCertificate,
	AcceptBMCCertificate: applyAcceptBMCCertificate,
	BindWorkflow:         applyBindWorkflow,
	PutSubnetV2:          applyPutSubnetV2,
	PutSubnet:            applyPutSubnet,
	SetCAGeneration:      applySetCAGeneration,
	QueueBootPXE:         applyQueueBootPXE,
	RecordLink:           applyRecordLink,
	RecordArtifact:       applyRecordArtifact,
	ForgetArtifact:       applyForgetArtifact,
	ReportArtifact:       applyReportArtifact,
	PutImage:             applyPutImage,
	DeleteImage:          applyDeleteImage,
	PlaceOrder:           applyPlaceOrder,
	ApplyDesiredV3:       applyDesiredV3,
	ApplyDesired:         applyDesired,
	PutMachineV2:         applyPutMachineV2,
	QuarantineAddress:    applyQuarantineAddress,
	LoseAttempt:          applyLoseAttempt,
	TakeOverJob:          applyTakeOverJob,
}

// Result is what applying a command returns, on the node that proposed
// it and, through forwarding, to a follower that asked the leader.
type Result struct {
	// Index is the Raft index the command was applied at.
	Index uint64 `json:"index"`
	// Object is what the command returned (the stored object of a put),
	// on the node that applied it; Value is the same as JSON, filled in
	// when the result crosses the network (see Value).
	Object any             `json:"-"`
	Value  json.RawMessage `json:"value,omitempty"`
	// Err is the domain error that refused the command, if any.
	Err *errs.Error `json:"error,omitempty"`
}

// DecodeValue returns a command's result as a T.
func DecodeValue[T any](r Result) (*T, error) {
	if o, ok := r.Object.(*T); ok {
		return o, nil
	}
	v := new(T)
	if err := json.Unmarshal(r.Value, v); err != nil {
		return nil, fmt.Errorf("site: decode a result: %w", err)
	}
	return v, nil
}

// StateMachine applies the site's commands to its store. It is the
// Applier of the site's Raft node (package raftnode): every node of the
// site applies the same log through it.
type StateMachine struct {
	db  *store.DB
	log *slog.Logger
}

// NewStateMachine returns the state machine over db.
func NewStateMachine(db *store.DB, log *slog.Logger) *StateMachine {
	return &StateMachine{db: db, log: log}
}

// Apply applies entries in order in one transaction that records the
// last index applied; an entry at or below the index applied before is a
// replay and changes nothing. Each entry gets a Result. A domain refusal
// is the Result's Err (the command changed nothing); an error is a
// storage failure, and the node stops.
func (sm *StateMachine) Apply(entries []command.Entry) ([]any, error) {
	results := make([]any, len(entries))
	update := sm.db.Update
	if leasesOnly(entries) {
		update = sm.db.UpdateLeases
	}
	err := update(func(tx *store.Tx) error {
		applied := tx.AppliedIndex()
		last := applied
		ahead := decodeAhead(entries, applied)
		defer ahead.wait()
		for i, e := range entries {
			results[i] = Result{Index: e.Index}
			if e.Index <= applied {
				continue
			}
			last = e.Index
			if e.Data == nil {
				continue
			}
			r, err := sm.applyOne(tx, ahead, i, e)
			if err != nil {
				return err
			}
			results[i] = r
		}
		if last == applied {
			return nil
		}
		return tx.UnsafeSetAppliedIndex(last)
	})
	return results, err
}

// leasesOnly reports whether entries are the DHCP server's lease commits
// alone (CommitLease writes a lease, its index and its machine's event):
// the store then wakes only the watchers of leases and events.
func leasesOnly(entries []command.Entry) bool {
	for _, e := range entries {
		if t, _ := command.Split(e.Data); e.Data == nil || t != CommitLease {
			return false
		}
	}
	return len(entries) > 0
}

// applyOne applies entry i, e, decoded ahead if ahead has it. Domain
// errors become the Result's Err; only storage failures are returned.
func (sm *StateMachine) applyOne(tx *store.Tx, ahead *ahead, i int, e command.Entry) (Result, error) {
	obj, done, err := ahead.apply(tx, i)
	var skipped bool
	if !done {
		obj, skipped, err = table.Apply(tx, e.Data, e.Index)
	}
	if skipped {
		t, _ := command.Split(e.Data)
		sm.log.Warn("skipping an unknown ignorable command", "type", uint8(t), "index", e.Index)
	}
	if err != nil {
		if d, ok := errs.AsError(err); ok && !errors.Is(err, store.ErrCorrupt) {
			return Result{Index: e.Index, Err: d}, nil
		}
		return Result{}, fmt.Errorf("command at index %d: %w", e.Index, err)
	}
	return Result{Index: e.Index, Object: obj}, nil
}

// AppliedIndex is the index of the last command the store applied.
func (sm *StateMachine) AppliedIndex() uint64 { return sm.db.AppliedIndex() }

// snapshot is raftnode.Snapshot.
type snapshot = interface {
	WriteTo(io.Writer) (int64, error)
	Release()
}

// Snapshot pins the store's current state.
func (sm *StateMachine) Snapshot() (snapshot, error) { return sm.db.Snapshot() }

// Restore replaces the store with a snapshot.
func (sm *StateMachine) Restore(r io.Reader) error { return sm.db.Restore(r) }
