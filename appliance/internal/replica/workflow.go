package replica

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

// Workflow and discovery commands.
const (
	// AdvanceWorkflow moves a workflow's state: an agent's report, the
	// leader's timer or a cancel.
	AdvanceWorkflow Type = 21
	// Discover records the hardware an installer found in discovery mode.
	Discover Type = 22
)

// How an Advance moves a workflow.
const (
	AdvanceReport = "report" // an agent's report
	AdvanceTick   = "tick"   // the leader's timer: timeouts and the deadline
	AdvanceCancel = "cancel" // an operator
)

// Advance is the payload of AdvanceWorkflow. Time is the proposer's clock,
// the only clock the transition reads, so every node computes the same
// state.
type Advance struct {
	Workflow string             `json:"workflow"`
	Kind     string             `json:"kind"`
	Report   *agentproto.Report `json:"report,omitempty"`
	Reason   string             `json:"reason,omitempty"` // of a cancel
	Time     time.Time          `json:"time"`
}

// step is the workflow transition a's kind names.
func (a *Advance) step() (func(workflow.State) (workflow.State, []workflow.Transition, error), error) {
	now := a.Time
	switch a.Kind {
	case AdvanceTick:
		return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			st, trs := workflow.Tick(st, now)
			return st, trs, nil
		}, nil
	case AdvanceCancel:
		reason := a.Reason
		if reason == "" {
			reason = "cancelled"
		}
		return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
			return workflow.Cancel(st, reason, now)
		}, nil
	case AdvanceReport:
		r := a.Report
		if r == nil {
			return nil, errs.Invalid("report", "is required")
		}
		switch r.Kind {
		case agentproto.ReportStart:
			return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
				return workflow.Start(st, r.Action, r.Attempt, now)
			}, nil
		case agentproto.ReportProgress:
			return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
				return workflow.Progress(st, r.Action, r.Attempt, r.Progress, r.Message, now)
			}, nil
		case agentproto.ReportFinish:
			return func(st workflow.State) (workflow.State, []workflow.Transition, error) {
				return workflow.Finish(st, r.Action, r.Attempt, r.OK, r.Message, now)
			}, nil
		}
		return nil, errs.Invalid("report.kind", "%q is not one of start, progress, finish", r.Kind)
	}
	return nil, errs.Invalid("kind", "%q is not one of report, tick, cancel", a.Kind)
}

func applyAdvanceWorkflow(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Advance
	mustDecode(payload, &req, index)
	step, err := req.step()
	if err != nil {
		return nil, err
	}
	return tx.UnsafeAdvanceWorkflow(req.Workflow, store.Write{Index: index, Time: req.Time}, step)
}

// DiscoverPayload is the payload of Discover.
type DiscoverPayload struct {
	Hardware agentproto.Hardware `json:"hardware"`
	Time     time.Time           `json:"time"`
}

// DiscoverResult is what applying Discover returns.
type DiscoverResult struct {
	MachineID string `json:"machine_id"`
	Created   bool   `json:"created"`
}

// applyDiscover creates or updates the machine that owns the report's
// MACs from what the installer found.
func applyDiscover(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DiscoverPayload
	mustDecode(payload, &req, index)
	hw := req.Hardware
	boot, err := store.NormalizeMAC(hw.MAC)
	if err != nil {
		return nil, errs.Invalid("hardware.mac", "%q is not a MAC address", hw.MAC)
	}
	var ifaces []store.Interface
	for i, n := range hw.NICs {
		mac, err := store.NormalizeMAC(n.MAC)
		if err != nil {
			return nil, errs.Invalid(fmt.Sprintf("hardware.nics[%d].mac", i), "%q is not a MAC address", n.MAC)
		}
		ifaces = append(ifaces, store.Interface{Name: n.Name, MAC: mac, Boot: mac == boot})
	}
	var disks []store.Disk
	for _, d := range hw.Disks {
		disks = append(disks, store.Disk{Name: d.Name, Size: d.SizeBytes, Model: d.Model, Serial: d.Serial})
	}
	m, err := tx.MachineByMAC(boot)
	created := false
	switch {
	case err == nil:
	case errors.Is(err, errs.ErrNotFound):
		created = true
		m = &store.Machine{ID: "m-" + strings.ReplaceAll(boot, ":", ""), State: store.StateDiscovered}
		if !containsMAC(ifaces, boot) {
			ifaces = append(ifaces, store.Interface{MAC: boot, Boot: true})
		}
	default:
		return nil, err
	}
	// Keep what an operator set on interfaces the machine already had
	// (reserved addresses, subnets, names); add the ones found.
	merged := m.Interfaces
	for _, f := range ifaces {
		if i := indexMAC(merged, f.MAC); i >= 0 {
			if merged[i].Name == "" {
				merged[i].Name = f.Name
			}
			continue
		}
		merged = append(merged, f)
	}
	m.Interfaces = merged
	m.Disks = disks
	m.Hardware = &store.Hardware{Vendor: hw.Vendor, Product: hw.Product, Serial: hw.Serial,
		CPUs: hw.CPUs, CPUModel: hw.CPUModel, MemoryBytes: hw.MemoryBytes}
	m.Normalize()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := store.Write{Index: index, Time: req.Time}
	if err := tx.UnsafePutMachine(m, w); err != nil {
		return nil, err
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	e := store.Event{MachineID: m.ID, Kind: "machine.discovered",
		Message: fmt.Sprintf("discovery %s machine %s: %d CPUs, %d MiB, %d disks, %d NICs",
			verb, m.ID, hw.CPUs, hw.MemoryBytes>>20, len(disks), len(ifaces)),
		Fields: map[string]string{"mac": boot, "created": fmt.Sprint(created)}}
	if err := tx.UnsafeAppendEvent(&e, index, req.Time); err != nil {
		return nil, err
	}
	return &DiscoverResult{MachineID: m.ID, Created: created}, nil
}

func indexMAC(ifaces []store.Interface, mac string) int {
	for i, f := range ifaces {
		if f.MAC == mac {
			return i
		}
	}
	return -1
}

func containsMAC(ifaces []store.Interface, mac string) bool { return indexMAC(ifaces, mac) >= 0 }
