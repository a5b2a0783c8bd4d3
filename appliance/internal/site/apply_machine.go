package site

import (
	"errors"
	"fmt"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Machines are put and deleted as objects (applyPutMachine, applyDelete:
// the store keeps their MAC and address indexes); discovery creates or
// completes them from what an installer found; the BMC job runner
// records a Redfish certificate it did not trust, and an operator accepts
// one.

// applyDiscover creates or updates the machine that owns the report's
// MACs from what the installer found: its event, machine.discovered,
// has the machine's record (RecordFields) and its hardware's vendor and
// product, as central's fleet model needs (the hardware class of its
// charts).
func applyDiscover(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DiscoverPayload
	command.MustDecode(payload, &req, index)
	return discover(tx, &req, index, discoveredV3)
}

// What machine.discovered's fields hold, by the command's version.
type discoveredVersion int

const (
	discoveredV1 discoveredVersion = iota + 1 // the boot MAC and whether the machine was created (DiscoverV1)
	discoveredV2                              // and the machine's record (DiscoverV2)
	discoveredV3                              // and the hardware's vendor and product (Discover)
)

// discover applies a discovery, its event's fields those of version.
func discover(tx *store.Tx, req *DiscoverPayload, index uint64, version discoveredVersion) (any, error) {
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
		Fields: discoveredFields(m, boot, created, version)})
}

// discoveredFields are machine.discovered's fields: the boot MAC, whether
// it created the machine, and withRecord the machine's record
// (RecordFields).
func discoveredFields(m *store.Machine, boot string, created bool, version discoveredVersion) map[string]string {
	f := map[string]string{}
	if version >= discoveredV2 {
		f = RecordFields(m)
	}
	if version >= discoveredV3 && m.Hardware != nil {
		if m.Hardware.Vendor != "" {
			f["vendor"] = m.Hardware.Vendor
		}
		if m.Hardware.Product != "" {
			f["product"] = m.Hardware.Product
		}
	}
	f["mac"], f["created"] = boot, fmt.Sprint(created)
	return f
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

// applyPutMachine stores a machine as applyPut does, keeping what the
// appliance knows of its BMC's certificate (keepBMCCertificate): read at
// apply, so that a put racing an operator's acceptance never undoes it.
// Its events are the command's.
func applyPutMachine(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return putMachine(tx, payload, index, false)
}

// applyPutMachineV2 is applyPutMachine, and records the put's event
// itself (putEvent: machine.created or machine.updated with the
// machine's record) from the machine it stored, after the command's own
// events: the command does not carry it.
func applyPutMachineV2(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return putMachine(tx, payload, index, true)
}

func putMachine(tx *store.Tx, payload []byte, index uint64, record bool) (any, error) {
	var req Put[store.Machine]
	command.MustDecode(payload, &req, index)
	return putMachineReq(tx, &req, index, record)
}

// putMachineReq applies a decoded PutMachine (record false) or
// PutMachineV2 (record true): decode_ahead.go decodes them off the
// apply's goroutine.
func putMachineReq(tx *store.Tx, req *Put[store.Machine], index uint64, record bool) (any, error) {
	var old *store.Machine
	if req.Object != nil {
		var err error
		if old, err = store.Find[store.Machine](tx, req.Object.ID); err != nil {
			return nil, err
		}
		keepBMCCertificate(req.Object, old)
	}
	obj, err := putObject(tx, req, index)
	if err != nil || !record {
		return obj, err
	}
	w := store.Write{Index: index, Time: req.Time, By: req.By}
	return obj, event(tx, w, putEvent(old != nil, req.Object))
}

// keepBMCCertificate gives m the BMC certificate record of old, the
// stored machine (nil for a new one): it is the appliance's, written only
// by RecordBMCCertificate and AcceptBMCCertificate, whatever a client
// sends. A machine whose BMC changed address keeps it too: the accepted
// certificate still has to be presented, and another is refused until it
// is accepted.
func keepBMCCertificate(m, old *store.Machine) {
	if m.BMC == nil {
		return
	}
	m.BMC.Certificate = nil
	if old != nil && old.BMC != nil && old.BMC.Certificate != nil {
		c := *old.BMC.Certificate
		m.BMC.Certificate = &c
	}
}

// applyRecordBMCCertificate records a certificate a machine's BMC
// presented that the site did not trust, for an operator to check and
// accept, with an event saying how. A certificate already recorded or
// accepted, or presented at an address the BMC no longer has, or by a BMC
// no longer driven by Redfish, changes nothing.
func applyRecordBMCCertificate(tx *store.Tx, payload []byte, index uint64) (any, error) {
	req, m, err := bmcOf(tx, payload, index)
	if err != nil {
		return nil, err
	}
	if req.Address != m.BMC.Address || m.BMC.Driver != "redfish" {
		return nil, nil // the BMC changed since: the certificate was someone else's
	}
	c := certificateOf(m)
	if c.Accepted == req.Fingerprint || c.Presented == req.Fingerprint {
		return nil, nil
	}
	c.Presented = req.Fingerprint
	w := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafePutMachine(m, w); err != nil {
		return nil, err
	}
	trusted := "no certificate is accepted for it yet"
	if c.Accepted != "" {
		trusted = "the accepted one is " + c.Accepted + ": its certificate changed"
	}
	return nil, event(tx, w, store.Event{MachineID: m.ID, Kind: "bmc.certificate_refused",
		Message: fmt.Sprintf("the BMC of machine %s (%s) presented certificate %s, which is not trusted (%s); the password was not sent. %s",
			m.ID, m.BMC.Address, req.Fingerprint, trusted, HowToAccept(m.ID, req.Fingerprint)),
		Fields: map[string]string{"fingerprint": req.Fingerprint, "address": m.BMC.Address, "accepted": c.Accepted}})
}

// applyAcceptBMCCertificate makes a certificate the one the site trusts
// for a machine's Redfish BMC, and returns the machine.
func applyAcceptBMCCertificate(tx *store.Tx, payload []byte, index uint64) (any, error) {
	req, m, err := bmcOf(tx, payload, index)
	if err != nil {
		return nil, err
	}
	if m.BMC.Driver != "redfish" {
		return nil, errs.Invalid("bmc.driver", "machine %s's BMC is driven by %s, which has no certificate", m.ID, m.BMC.Driver)
	}
	c := certificateOf(m)
	before := c.Accepted
	c.Accepted = req.Fingerprint
	if c.Presented == req.Fingerprint {
		c.Presented = ""
	}
	w := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafePutMachine(m, w); err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("certificate %s accepted for the BMC of machine %s (%s)", req.Fingerprint, m.ID, m.BMC.Address)
	if before != "" && before != req.Fingerprint {
		msg += ", replacing " + before
	}
	return m, event(tx, w, store.Event{MachineID: m.ID, Kind: "bmc.certificate_accepted", Message: msg,
		Fields: map[string]string{"fingerprint": req.Fingerprint, "replaced": before}})
}

// bmcOf decodes a BMCCertificate command, checks it and returns it with
// the machine it is about.
func bmcOf(tx *store.Tx, payload []byte, index uint64) (BMCCertificate, *store.Machine, error) {
	var req BMCCertificate
	command.MustDecode(payload, &req, index)
	if fp, err := store.NormalizeFingerprint(req.Fingerprint); err != nil || fp != req.Fingerprint {
		return req, nil, errs.Invalid("fingerprint", "%q is not a fingerprint in the stored form (sha256: and 64 lowercase hex digits)", req.Fingerprint)
	}
	m, err := store.Get[store.Machine](tx, req.Machine)
	if err != nil {
		return req, nil, err
	}
	if m.BMC == nil {
		return req, nil, errs.Invalid("bmc", "machine %s has no BMC", m.ID)
	}
	return req, m, nil
}

// HowToAccept tells an operator how to accept a certificate of a
// machine's BMC, for the messages that name one refused.
func HowToAccept(machineID, fingerprint string) string {
	return "If the certificate is the BMC's own, accept it: outpost bmc accept-certificate " + machineID + " " + fingerprint
}

// certificateOf returns m's BMC certificate record, made if it has none.
func certificateOf(m *store.Machine) *store.BMCCertificate {
	if m.BMC.Certificate == nil {
		m.BMC.Certificate = &store.BMCCertificate{}
	}
	return m.BMC.Certificate
}
