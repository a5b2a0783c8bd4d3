package metadata

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// instance is what the views show about the machine at one address, read
// in one transaction.
type instance struct {
	addr    netip.Addr
	mac     string // the MAC the address belongs to
	nic     int    // that interface's index in machine.Interfaces
	leased  bool   // an active lease holds addr (else a reservation does)
	machine *store.Machine
	// values are the current workflow's (nil if none).
	values   map[string]string
	workflow *store.Workflow // nil if none
	site     string
	subnet   *store.Subnet // addr's subnet, nil if unknown
	// trace is the trace the machine's requests belong to, if any.
	trace machinetrace.Trace
}

// lookup returns the machine at addr, or nil if there is none.
func (s *Server) lookup(addr netip.Addr) (*instance, error) {
	now := s.now()
	var in *instance
	err := s.db.View(func(tx *store.Tx) error {
		var subnet string
		var err error
		in, subnet, err = s.identify(tx, addr, now)
		if in == nil || err != nil {
			return err
		}
		// Tracing never holds an answer up: a failure here is logged.
		if in.trace, err = s.traces.Machine(tx, in.machine); err != nil {
			s.log.Warn("metadata: the machine's trace", "machine", in.machine.ID, "err", err)
		}
		// Nothing may show the BMC: drop it here, once.
		in.machine.BMC = nil
		if id := in.machine.Workflow; id != "" {
			wf, err := store.Get[store.Workflow](tx, id)
			switch {
			case err == nil && wf.MachineID == in.machine.ID:
				in.workflow, in.values = wf, wf.Values
			case err != nil && !errors.Is(err, errs.ErrNotFound):
				return err
			}
		}
		set, err := tx.Settings()
		if err != nil {
			return err
		}
		in.site = set.SiteName
		if subnet != "" {
			sub, err := store.Get[store.Subnet](tx, subnet)
			if err != nil && !errors.Is(err, errs.ErrNotFound) {
				return err
			}
			in.subnet = sub
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// identify finds the machine addr belongs to (see the package comment) and
// the name of addr's subnet.
func (s *Server) identify(tx *store.Tx, addr netip.Addr, now time.Time) (*instance, string, error) {
	l, err := store.Get[store.Lease](tx, addr.String())
	switch {
	case err == nil && l.State == store.LeaseActive && l.Holds(s.steps.JudgeAt(now, l.Expires.Sub(l.Starts))):
		m, err := tx.MachineByMAC(l.MAC)
		if errors.Is(err, errs.ErrNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		for i, nic := range m.Interfaces {
			if nic.MAC == l.MAC {
				return &instance{addr: addr, mac: l.MAC, nic: i, leased: true, machine: m}, l.Subnet, nil
			}
		}
		return nil, "", nil
	case err != nil && !errors.Is(err, errs.ErrNotFound):
		return nil, "", err
	}
	m, i, err := tx.MachineByIP(addr)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return nil, "", nil
	case err != nil:
		return nil, "", err
	}
	nic := m.Interfaces[i]
	return &instance{addr: addr, mac: nic.MAC, nic: i, machine: m}, nic.Subnet, nil
}

// hostname is the workflow's hostname, else the machine's, else its id.
func (in *instance) hostname() string {
	if h := in.values[actions.ValueHostname]; h != "" {
		return h
	}
	if in.machine.Hostname != "" {
		return in.machine.Hostname
	}
	return in.machine.ID
}

// keys are the workflow's SSH public keys, one per non-blank line.
func (in *instance) keys() []string {
	keys := []string{}
	for line := range strings.Lines(in.values[actions.ValueSSHKeys]) {
		if k := strings.TrimSpace(line); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// userData is the workflow's user-data, and whether it has any.
func (in *instance) userData() (string, bool) {
	ud, ok := in.values[actions.ValueUserData]
	return ud, ok && ud != ""
}
