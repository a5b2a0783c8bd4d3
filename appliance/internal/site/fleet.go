package site

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// What central's fleet model needs of the site's events. Central
// derives each machine's record (its state and reason, hostname, MACs,
// tags, power, workflow progress and last order) from the site's events
// alone, exactly (central/fleet.Apply, whose comment lists what
// it reads of each event): so every change of one of those is an event
// that says the new value, not only that something changed. Most events
// always have (machine.state, power.*, workflow.*, action.*, order.*);
// these say it since release 6856dfc's successor:
//
//   - A machine put is machine.created or machine.updated with the
//     machine's record (RecordFields). A client's put (PutMachineV2, 54)
//     records it at apply from the machine it stores; PutMachine (1), of
//     releases up to a66edc4, carried it in the command, made by the
//     proposer from the machine exactly as it is stored, and so does a
//     delete (DeleteMachine, machine.deleted): both replay as they always
//     did.
//     Central's puts and deletes (ApplyDesired, 51) record theirs at
//     apply, if the record changed; ApplyDesiredV3 (48) recorded none.
//   - Discovery (Discover, 53) has the machine's record and its
//     hardware's vendor and product in machine.discovered's fields;
//     DiscoverV2 (52) had the record only, DiscoverV1 (22) only the MAC.
//   - An order's events (order.created, order.started) name its trace
//     (trace_id) when the order has a traceparent: only commands of
//     releases that trace place such orders, so old log entries replay
//     as they always did.
//   - An order of central's that the site refuses (ApplyDesired, 51)
//     names its machine.
//
// Adding a field to an event an existing command records would change
// what replaying that command's old log entries records: a new meaning,
// which takes a new command type (doc.go).

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
		f["macs"] = macList(macs)
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

// macList is jsonList of MACs: by hand when every one is in
// store.NormalizeMAC's form (hex digits and colons, which JSON writes as
// they are), as a machine's stored ones are; the same bytes either way.
func macList(macs []string) string {
	if len(macs) == 0 {
		return jsonList(macs)
	}
	n := 2
	for _, mac := range macs {
		if n, err := store.NormalizeMAC(mac); err != nil || n != mac {
			return jsonList(macs)
		}
		n += len(mac) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, mac := range macs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), mac...), '"')
	}
	return string(append(b, ']'))
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
