package site

import (
	"errors"
	"fmt"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Machines are put and deleted as objects (applyPut, applyDelete: the
// store keeps their MAC and address indexes); discovery creates or
// completes them from what an installer found.

// applyDiscover creates or updates the machine that owns the report's
// MACs from what the installer found.
func applyDiscover(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DiscoverPayload
	command.MustDecode(payload, &req, index)
	hw := req.Hardware
	boot, err := store.NormalizeMAC(hw.MAC)
	if err != nil {
		return nil, errs.Invalid("hardware.mac", "%q is not a MAC address", hw.MAC)
	}
	found, err := foundInterfaces(hw, boot)
	if err != nil {
		return nil, err
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
		if indexMAC(found, boot) < 0 {
			found = append(found, store.Interface{MAC: boot, Boot: true})
		}
	default:
		return nil, err
	}
	m.Interfaces = mergeInterfaces(m.Interfaces, found)
	m.Disks = disks
	m.Hardware = &store.Hardware{Vendor: hw.Vendor, Product: hw.Product, Serial: hw.Serial,
		CPUs: hw.CPUs, CPUModel: hw.CPUModel, MemoryBytes: hw.MemoryBytes}
	m.Normalize()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafePutMachine(m, w); err != nil {
		return nil, err
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	return &DiscoverResult{MachineID: m.ID, Created: created}, event(tx, w, store.Event{MachineID: m.ID, Kind: "machine.discovered",
		Message: fmt.Sprintf("discovery %s machine %s: %d CPUs, %d MiB, %d disks, %d NICs",
			verb, m.ID, hw.CPUs, hw.MemoryBytes>>20, len(disks), len(found)),
		Fields: map[string]string{"mac": boot, "created": fmt.Sprint(created)}})
}

// foundInterfaces are the NICs an installer found, the boot one marked.
func foundInterfaces(hw Hardware, boot string) ([]store.Interface, error) {
	var out []store.Interface
	for i, n := range hw.NICs {
		mac, err := store.NormalizeMAC(n.MAC)
		if err != nil {
			return nil, errs.Invalid(fmt.Sprintf("hardware.nics[%d].mac", i), "%q is not a MAC address", n.MAC)
		}
		out = append(out, store.Interface{Name: n.Name, MAC: mac, Boot: mac == boot})
	}
	return out, nil
}

// mergeInterfaces keeps what an operator set on the interfaces a machine
// already had (reserved addresses, subnets, names) and adds the ones
// found.
func mergeInterfaces(have, found []store.Interface) []store.Interface {
	for _, f := range found {
		if i := indexMAC(have, f.MAC); i >= 0 {
			if have[i].Name == "" {
				have[i].Name = f.Name
			}
			continue
		}
		have = append(have, f)
	}
	return have
}

func indexMAC(ifaces []store.Interface, mac string) int {
	for i, f := range ifaces {
		if f.MAC == mac {
			return i
		}
	}
	return -1
}
