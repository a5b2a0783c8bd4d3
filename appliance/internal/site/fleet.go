package site

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// What central's fleet model needs of the site's events. Central
// derives each machine's record (its state and reason, hostname, MACs,
// tags, power, workflow progress and last order) from the site's events
// alone, exactly (central/internal/fleet.Apply): so every change of one
// of those is an event that says the new value, not only that something
// changed.
//
//   - A machine put is machine.created or machine.updated (central's,
//     by ApplyDesired, only if its record changed; a client's, by
//     PutMachine, always: the proposer puts the event into the command
//     with the machine exactly as it is stored), a delete
//     machine.deleted (the proposer's, in the command), and discovery's
//     machine.discovered: each with the record's fields (RecordFields).
//     The record's power is also power.on and power.off's "to".
//   - machine.state has the new state in "to" and its "reason".
//   - workflow.created has the number of actions in "total"; every
//     transition of a workflow has "status" (the workflow's), "done"
//     (its actions ended) and "total".
//   - order.created, order.started and order.waiting have the order's
//     image in "order_image" and its digest in "order_sha256";
//     order.failed and order.succeeded the "reason"; a refused order of
//     central's names its machine.

// RecordFields are the fields of a machine's record central derives:
// state, reason, hostname, power, and the MACs and tags as JSON arrays.
func RecordFields(m *store.Machine) map[string]string {
	f := map[string]string{"state": string(m.State)}
	if m.Reason != "" {
		f["reason"] = m.Reason
	}
	if m.Hostname != "" {
		f["hostname"] = m.Hostname
	}
	if macs := machineMACs(m); len(macs) > 0 {
		f["macs"] = jsonList(macs)
	}
	if len(m.Tags) > 0 {
		f["tags"] = jsonList(m.Tags)
	}
	if m.Power != "" {
		f["power"] = m.Power
	}
	return f
}

// machineMACs are m's interfaces' MACs, in its order.
func machineMACs(m *store.Machine) []string {
	out := make([]string, 0, len(m.Interfaces))
	for _, nic := range m.Interfaces {
		out = append(out, nic.MAC)
	}
	return out
}

func jsonList(l []string) string {
	b, _ := json.Marshal(l)
	return string(b)
}

// sameRecord reports whether a and b have the same record at central.
func sameRecord(a, b *store.Machine) bool {
	return a.State == b.State && a.Reason == b.Reason && a.Hostname == b.Hostname && a.Power == b.Power &&
		slices.Equal(machineMACs(a), machineMACs(b)) && slices.Equal(a.Tags, b.Tags)
}

// machinePutEvent records a put of machine m, which was old before (nil:
// it is new), if its record changed: machine.created or machine.updated.
func machinePutEvent(tx *store.Tx, old, m *store.Machine, w store.Write) error {
	if old != nil && sameRecord(old, m) {
		return nil
	}
	return event(tx, w, putEvent(old != nil, m))
}

// putEvent is the event of a put of m: machine.updated if it existed,
// else machine.created.
func putEvent(existed bool, m *store.Machine) store.Event {
	e := store.Event{MachineID: m.ID, Kind: "machine.created", Fields: RecordFields(m),
		Message: fmt.Sprintf("machine %s created (%s)", m.ID, m.State)}
	if existed {
		e.Kind, e.Message = "machine.updated", fmt.Sprintf("machine %s updated (%s)", m.ID, m.State)
	}
	return e
}

// machineDeletedEvent records the delete of machine id.
func machineDeletedEvent(tx *store.Tx, id string, w store.Write) error {
	return event(tx, w, deletedEvent(id))
}

func deletedEvent(id string) store.Event {
	return store.Event{MachineID: id, Kind: "machine.deleted", Message: fmt.Sprintf("machine %s deleted", id)}
}

// actionsDone counts the actions of st that have ended.
func actionsDone(st *workflow.State) int {
	n := 0
	for _, a := range st.Actions {
		if a.Status.Final() {
			n++
		}
	}
	return n
}
