package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
	bolt "go.etcd.io/bbolt"
)

// MachineState is where a machine is in its life.
type MachineState string

// Machine states.
const (
	StateDiscovered     MachineState = "discovered"
	StateReady          MachineState = "ready"
	StateProvisioning   MachineState = "provisioning"
	StateProvisioned    MachineState = "provisioned"
	StateFailed         MachineState = "failed"
	StateDeprovisioning MachineState = "deprovisioning"
)

var machineStates = []string{
	string(StateDiscovered), string(StateReady), string(StateProvisioning),
	string(StateProvisioned), string(StateFailed), string(StateDeprovisioning),
}

// Architectures a machine can have.
var architectures = []string{"x86_64", "aarch64"}

// BMC drivers.
var bmcDrivers = []string{"ipmi", "redfish"}

// Machine is a server the site provisions.
type Machine struct {
	Meta
	ID         string      `json:"id"`
	Hostname   string      `json:"hostname,omitempty"`
	Arch       string      `json:"arch,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	BMC        *BMC        `json:"bmc,omitempty"`
	Disks      []Disk      `json:"disks,omitempty"`
	Tags       []string    `json:"tags,omitempty"`
	// SecureBoot says the machine's UEFI firmware enforces Secure Boot:
	// it network-boots Debian's signed shim and GRUB, not iPXE (which its
	// firmware refuses). UEFI PXE does not say so in DHCP; this does.
	SecureBoot bool `json:"secure_boot,omitempty"`
	// Hardware is what discovery found, if it ran.
	Hardware *Hardware    `json:"hardware,omitempty"`
	State    MachineState `json:"state"`
	// Reason says why the machine is in its state; set for "failed".
	Reason string `json:"reason,omitempty"`
	// Workflow is the id of the machine's current workflow (running, or
	// the last one to end), which its state follows and its metadata
	// comes from. The appliance sets it; writes by clients are ignored.
	Workflow string `json:"workflow,omitempty"`
	// Power is the power state its BMC last reported ("on", "off"); the
	// appliance sets it.
	Power string `json:"power,omitempty"`
}

// BMCPasswordAD is the associated data a machine's BMC password is sealed
// with: it binds the sealed password to its machine.
func BMCPasswordAD(machineID string) string { return "machine/" + machineID + "/bmc" }

// Hardware is a machine's inventory, as the installer found it.
type Hardware struct {
	Vendor      string `json:"vendor,omitempty"`
	Product     string `json:"product,omitempty"`
	Serial      string `json:"serial,omitempty"`
	CPUs        int    `json:"cpus,omitempty"`
	CPUModel    string `json:"cpu_model,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
}

// Interface is one network interface of a machine.
type Interface struct {
	Name string `json:"name,omitempty"`
	MAC  string `json:"mac"`
	// IP is the address reserved for this interface, if any.
	IP string `json:"ip,omitempty"`
	// Subnet names the subnet IP belongs to.
	Subnet string `json:"subnet,omitempty"`
	// Boot marks the interface the machine network-boots from.
	Boot bool `json:"boot,omitempty"`
}

// BMC is how the appliance reaches a machine's baseboard controller.
type BMC struct {
	Address  string `json:"address"`
	Driver   string `json:"driver,omitempty"`
	Username string `json:"username,omitempty"`
	// Password is accepted on input only. The store never keeps it in the
	// clear: the API seals it into SealedPassword and clears it.
	Password string `json:"password,omitempty"`
	// SealedPassword is Password encrypted with the site key.
	SealedPassword []byte `json:"sealed_password,omitempty"`
	// PasswordSet tells API readers that a password is stored.
	PasswordSet bool `json:"password_set,omitempty"`
	// Certificate is what the appliance knows of the BMC's Redfish
	// certificate. The appliance sets it; writes by clients are ignored.
	Certificate *BMCCertificate `json:"certificate,omitempty"`
}

// BMCCertificate is what the appliance knows of a BMC's Redfish
// certificate, by fingerprint (NormalizeFingerprint's form). The BMC job
// runner records a certificate it refused (Presented); an operator
// accepts one (Accepted). The appliance sends the BMC's password only to
// the accepted certificate (or to one the site's BMC CA issued).
type BMCCertificate struct {
	// Accepted is the certificate an operator accepted.
	Accepted string `json:"accepted,omitempty"`
	// Presented is the last certificate the BMC presented that was not
	// trusted, for an operator to check and accept; it is cleared when
	// it is accepted.
	Presented string `json:"presented,omitempty"`
}

// NormalizeFingerprint returns a certificate's SHA-256 fingerprint in the
// form the appliance stores and shows, "sha256:" and 64 lowercase hex
// digits, from that form or the one openssl prints
// ("sha256 Fingerprint=AB:CD:...", with or without its prefix).
func NormalizeFingerprint(s string) (string, error) {
	h := strings.TrimSpace(s)
	for _, prefix := range []string{"sha256:", "sha256 fingerprint="} {
		if len(h) >= len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
			h = h[len(prefix):]
			break
		}
	}
	h = strings.ToLower(strings.ReplaceAll(h, ":", ""))
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q is not a SHA-256 fingerprint (sha256: and 64 hex digits, colons allowed)", s)
	}
	return "sha256:" + h, nil
}

// Disk is one block device of a machine.
type Disk struct {
	Name   string `json:"name"`
	Size   uint64 `json:"size_bytes,omitempty"`
	Model  string `json:"model,omitempty"`
	Serial string `json:"serial,omitempty"`
}

func (*Machine) Kind() string   { return "machine" }
func (m *Machine) Key() string  { return m.ID }
func (*Machine) bucket() []byte { return bucketMachines }

// Normalize puts MACs into canonical form and fills defaults. Call it
// before Validate.
func (m *Machine) Normalize() {
	for i := range m.Interfaces {
		if mac, err := NormalizeMAC(m.Interfaces[i].MAC); err == nil {
			m.Interfaces[i].MAC = mac
		}
	}
	if m.State == "" {
		m.State = StateReady
	}
	if m.Arch == "" {
		m.Arch = "x86_64"
	}
	if m.BMC != nil && m.BMC.Driver == "" {
		m.BMC.Driver = "ipmi"
	}
}

// Validate checks the machine on its own.
func (m *Machine) Validate() error {
	if err := validName("id", m.ID); err != nil {
		return err
	}
	if err := validHostname("hostname", m.Hostname); err != nil {
		return err
	}
	if err := validOneOf("arch", m.Arch, architectures...); err != nil {
		return err
	}
	if err := validOneOf("state", string(m.State), machineStates...); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, nic := range m.Interfaces {
		f := func() string { return fmt.Sprintf("interfaces[%d]", i) } // only for an error
		mac, err := NormalizeMAC(nic.MAC)
		if err != nil {
			return errs.Invalid(f()+".mac", "%q is not a 48-bit MAC address", nic.MAC)
		}
		if seen[mac] {
			return errs.Invalid(f()+".mac", "%s is listed twice", mac)
		}
		seen[mac] = true
		if nic.IP != "" {
			if err := validAddr(f()+".ip", nic.IP, false); err != nil {
				return err
			}
		}
	}
	if m.BMC != nil {
		if err := m.BMC.validate(); err != nil {
			return err
		}
	}
	for i, d := range m.Disks {
		if d.Name == "" {
			return errs.Invalid(fmt.Sprintf("disks[%d].name", i), "is required")
		}
	}
	for i, t := range m.Tags {
		if strings.TrimSpace(t) == "" {
			return errs.Invalid(fmt.Sprintf("tags[%d]", i), "is empty")
		}
	}
	return nil
}

func (b *BMC) validate() error {
	if b.Address == "" {
		return errs.Invalid("bmc.address", "is required")
	}
	host := b.Address
	if ap, err := netip.ParseAddrPort(b.Address); err == nil {
		host = ap.Addr().String()
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return errs.Invalid("bmc.address", "%q is not a host or host:port", b.Address)
	}
	if c := b.Certificate; c != nil {
		for field, fp := range map[string]string{"accepted": c.Accepted, "presented": c.Presented} {
			if n, err := NormalizeFingerprint(fp); fp != "" && (err != nil || n != fp) {
				return errs.Invalid("bmc.certificate."+field, "%q is not a fingerprint in the stored form (sha256: and 64 lowercase hex digits)", fp)
			}
		}
	}
	return validOneOf("bmc.driver", b.Driver, bmcDrivers...)
}

// View returns a copy safe to show outside the appliance: the BMC password,
// sealed or not, is replaced by PasswordSet.
func (m *Machine) View() *Machine {
	c := *m
	c.Interfaces = append([]Interface(nil), m.Interfaces...)
	if m.BMC != nil {
		b := *m.BMC
		b.PasswordSet = len(b.SealedPassword) > 0 || b.Password != ""
		b.Password = ""
		b.SealedPassword = nil
		c.BMC = &b
	}
	return &c
}

// MachineByMAC returns the machine one of whose interfaces has mac.
func (tx *Tx) MachineByMAC(mac string) (*Machine, error) {
	n, err := NormalizeMAC(mac)
	if err != nil {
		return nil, err
	}
	id := tx.tx.Bucket(bucketMACIndex).Get([]byte(n))
	if id == nil {
		return nil, errs.NotFound("machine with MAC", n)
	}
	return Get[Machine](tx, string(id))
}

// MachineByIP returns the machine one of whose interfaces reserves addr,
// and that interface's index; the machine with the lowest id if several
// do.
func (tx *Tx) MachineByIP(addr netip.Addr) (*Machine, int, error) {
	prefix := append([]byte(addr.String()), 0)
	k, _ := tx.tx.Bucket(bucketIPIndex).Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, 0, errs.NotFound("machine with address", addr.String())
	}
	m, err := Get[Machine](tx, string(k[len(prefix):]))
	if err != nil {
		return nil, 0, err
	}
	for i, nic := range m.Interfaces {
		if ip, err := netip.ParseAddr(nic.IP); err == nil && ip == addr {
			return m, i, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: the address index names machine %q for %s, which it does not reserve", ErrCorrupt, m.ID, addr)
}

// ipIndexEntries are m's entries in the IP index: for each interface
// that reserves an address, the key address "\x00" machine id and the
// value the interface's MAC.
func ipIndexEntries(m *Machine) (keys, macs [][]byte) {
	for _, nic := range m.Interfaces {
		if ip, err := netip.ParseAddr(nic.IP); err == nil {
			keys = append(keys, append(append([]byte(ip.String()), 0), m.ID...))
			macs = append(macs, []byte(nic.MAC))
		}
	}
	return keys, macs
}

// indexIPs adds (or with add false, removes) m's entries in the IP index.
func (tx *Tx) indexIPs(m *Machine, add bool) error {
	return indexIPs(tx.tx.Bucket(bucketIPIndex), m, add)
}

func indexIPs(b *bolt.Bucket, m *Machine, add bool) error {
	keys, macs := ipIndexEntries(m)
	for i, k := range keys {
		var err error
		if add {
			err = b.Put(k, macs[i])
		} else {
			err = b.Delete(k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rebuildIPIndex fills the IP index afresh from the machines (a store
// written before the index existed, or before it held MACs).
func rebuildIPIndex(btx *bolt.Tx) error {
	if err := btx.DeleteBucket(bucketIPIndex); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
		return err
	}
	idx, err := btx.CreateBucket(bucketIPIndex)
	if err != nil {
		return err
	}
	return btx.Bucket(bucketMachines).ForEach(func(k, v []byte) error {
		var m Machine
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("%w: machine %q: %v", ErrCorrupt, k, err)
		}
		return indexIPs(idx, &m, true)
	})
}

// Reservation is an address a machine's interface reserves.
type Reservation struct {
	IP        netip.Addr
	MAC       string
	MachineID string
}

// Reservations returns every address machines' interfaces reserve, in
// address order as the index keeps it, from the IP index.
func (tx *Tx) Reservations() ([]Reservation, error) {
	var out []Reservation
	err := tx.tx.Bucket(bucketIPIndex).ForEach(func(k, v []byte) error {
		ip, id, ok := bytes.Cut(k, []byte{0})
		a, err := netip.ParseAddr(string(ip))
		if !ok || err != nil {
			return fmt.Errorf("%w: ip_index key %q", ErrCorrupt, k)
		}
		out = append(out, Reservation{IP: a, MAC: string(v), MachineID: string(id)})
		return nil
	})
	return out, err
}

// UnsafePutMachine stores m and keeps the MAC and IP indexes. A MAC that already
// belongs to another machine is a conflict and changes nothing.
func (tx *Tx) UnsafePutMachine(m *Machine, w Write) error {
	for i := range m.Interfaces {
		mac, err := NormalizeMAC(m.Interfaces[i].MAC)
		if err != nil {
			return errs.Invalid(fmt.Sprintf("interfaces[%d].mac", i), "%q is not a 48-bit MAC address", m.Interfaces[i].MAC)
		}
		m.Interfaces[i].MAC = mac
	}
	idx := tx.tx.Bucket(bucketMACIndex)
	for _, nic := range m.Interfaces {
		if owner := idx.Get([]byte(nic.MAC)); owner != nil && string(owner) != m.ID {
			return errs.Conflict("MAC %s already belongs to machine %q", nic.MAC, owner)
		}
	}
	prev, err := tx.unsafePut(m, w)
	if err != nil {
		return err
	}
	nicsChanged := true
	if prev != nil {
		var old Machine
		if err := json.Unmarshal(prev, &old); err != nil {
			return fmt.Errorf("%w: machine %q: %v", ErrCorrupt, m.ID, err)
		}
		for _, nic := range old.Interfaces {
			if err := idx.Delete([]byte(nic.MAC)); err != nil {
				return err
			}
		}
		if err := tx.indexIPs(&old, false); err != nil {
			return err
		}
		nicsChanged = !slices.Equal(old.Interfaces, m.Interfaces)
	}
	if nicsChanged {
		if err := tx.bumpIPAMGen(); err != nil {
			return err
		}
	}
	for _, nic := range m.Interfaces {
		if err := idx.Put([]byte(nic.MAC), []byte(m.ID)); err != nil {
			return err
		}
	}
	return tx.indexIPs(m, true)
}

// UnsafeDeleteMachine removes a machine and its MAC and IP index entries.
func (tx *Tx) UnsafeDeleteMachine(id string, expect uint64) error {
	prev, err := tx.unsafeDelete(&Machine{}, id, expect)
	if err != nil {
		return err
	}
	var old Machine
	if err := json.Unmarshal(prev, &old); err != nil {
		return fmt.Errorf("%w: machine %q: %v", ErrCorrupt, id, err)
	}
	for _, nic := range old.Interfaces {
		if err := tx.tx.Bucket(bucketMACIndex).Delete([]byte(nic.MAC)); err != nil {
			return err
		}
	}
	if err := tx.indexIPs(&old, false); err != nil {
		return err
	}
	return tx.bumpIPAMGen()
}
