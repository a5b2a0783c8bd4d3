package syncproto

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Machine values the site knows. An empty Arch, BMC.Driver or State
// takes the site's default (x86_64, ipmi; a new machine is ready).
var (
	MachineArchs  = []string{"x86_64", "aarch64"}
	BMCDrivers    = []string{"ipmi", "redfish"}
	MachineStates = []string{"discovered", "ready", "provisioning", "provisioned", "failed", "deprovisioning"}
)

// Machine is a server of the site: its interfaces, its BMC, its disks.
// What the site learns by itself (discovered hardware, power, the
// current workflow) is not central's to send.
type Machine struct {
	ID         string      `json:"id"`
	Hostname   string      `json:"hostname,omitempty"`
	Arch       string      `json:"arch,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	BMC        *BMC        `json:"bmc,omitempty"`
	Disks      []Disk      `json:"disks,omitempty"`
	Tags       []string    `json:"tags,omitempty"`
	// State and Reason, when set, put the machine in that state; when
	// empty the site keeps the machine's own.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Interface is one network interface of a machine.
type Interface struct {
	Name string `json:"name,omitempty"`
	MAC  string `json:"mac"`
	// IP is the IPv4 address reserved for the interface, if any, in the
	// subnet named Subnet.
	IP     string `json:"ip,omitempty"`
	Subnet string `json:"subnet,omitempty"`
	// Boot marks the interface the machine network-boots from.
	Boot bool `json:"boot,omitempty"`
}

// BMC is how the site reaches a machine's baseboard controller.
type BMC struct {
	// Address is a host or host:port.
	Address  string `json:"address"`
	Driver   string `json:"driver,omitempty"`
	Username string `json:"username,omitempty"`
	// Password travels in the clear inside the connection (TLS): each
	// side seals it at rest with its own key.
	Password string `json:"password,omitempty"`
}

// Disk is one block device of a machine.
type Disk struct {
	Name   string `json:"name"`
	Size   uint64 `json:"size_bytes,omitempty"`
	Model  string `json:"model,omitempty"`
	Serial string `json:"serial,omitempty"`
}

func (*Machine) Kind() string        { return KindMachine }
func (m *Machine) Key() string       { return m.ID }
func (m *Machine) keyField() *string { return &m.ID }

// Validate checks the machine (see Object).
func (m *Machine) Validate() error {
	if err := objectName(KindMachine, "id", m.ID); err != nil {
		return err
	}
	if !validHostname(m.Hostname) {
		return invalid(KindMachine, "hostname", "%q is not a valid hostname", clip(m.Hostname))
	}
	if err := oneOfOrEmpty(KindMachine, "arch", m.Arch, MachineArchs...); err != nil {
		return err
	}
	if err := oneOfOrEmpty(KindMachine, "state", m.State, MachineStates...); err != nil {
		return err
	}
	if err := validInterfaces(m.Interfaces); err != nil {
		return err
	}
	if m.BMC != nil {
		if err := m.BMC.validate(); err != nil {
			return err
		}
	}
	for i, d := range m.Disks {
		if d.Name == "" {
			return invalid(KindMachine, fmt.Sprintf("disks[%d].name", i), "is required")
		}
	}
	for i, t := range m.Tags {
		if strings.TrimSpace(t) == "" {
			return invalid(KindMachine, fmt.Sprintf("tags[%d]", i), "is empty")
		}
	}
	return nil
}

// validInterfaces checks each interface's MAC (each once) and address.
func validInterfaces(nics []Interface) error {
	seen := make(map[string]bool, len(nics))
	for i, nic := range nics {
		field := fmt.Sprintf("interfaces[%d]", i)
		hw, err := net.ParseMAC(strings.TrimSpace(nic.MAC))
		if err != nil || len(hw) != 6 {
			return invalid(KindMachine, field+".mac", "%q is not a 48-bit MAC address", clip(nic.MAC))
		}
		if seen[hw.String()] {
			return invalid(KindMachine, field+".mac", "%s is listed twice", hw)
		}
		seen[hw.String()] = true
		if a, err := netip.ParseAddr(nic.IP); nic.IP != "" && (err != nil || !a.Is4()) {
			return invalid(KindMachine, field+".ip", "%q is not an IPv4 address", clip(nic.IP))
		}
	}
	return nil
}

func (b *BMC) validate() error {
	host := b.Address
	if ap, err := netip.ParseAddrPort(b.Address); err == nil {
		host = ap.Addr().String()
	}
	switch {
	case b.Address == "":
		return invalid(KindMachine, "bmc.address", "is required")
	case strings.ContainsAny(host, " /"):
		return invalid(KindMachine, "bmc.address", "%q is not a host or host:port", clip(b.Address))
	}
	return oneOfOrEmpty(KindMachine, "bmc.driver", b.Driver, BMCDrivers...)
}

// validHostname reports whether h is empty or a DNS name: dot-separated
// labels of 1 to 63 letters, digits and '-', neither first nor last, at
// most 253 bytes in all.
func validHostname(h string) bool {
	if h == "" {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
