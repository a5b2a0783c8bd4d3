package store

import (
	"net/netip"
	"time"
)

// LeaseState is the state of one address lease.
type LeaseState string

// Lease states.
const (
	LeaseOffered  LeaseState = "offered"
	LeaseActive   LeaseState = "active"
	LeaseReleased LeaseState = "released"
	// LeaseDeclined marks an address a client reported in use by someone
	// else; it stays out of the pool until Expires.
	LeaseDeclined LeaseState = "declined"
)

// Lease binds an IPv4 address to a client for a time.
type Lease struct {
	Meta
	IP        string     `json:"ip"`
	MAC       string     `json:"mac"`
	MachineID string     `json:"machine_id,omitempty"`
	Hostname  string     `json:"hostname,omitempty"`
	Subnet    string     `json:"subnet"`
	State     LeaseState `json:"state"`
	Starts    time.Time  `json:"starts"`
	Expires   time.Time  `json:"expires"`
}

func (*Lease) Kind() string   { return "lease" }
func (l *Lease) Key() string  { return l.IP }
func (*Lease) bucket() []byte { return bucketLeases }

// Validate checks the lease on its own.
func (l *Lease) Validate() error {
	a, err := netip.ParseAddr(l.IP)
	if err != nil || !a.Is4() {
		return Invalid("ip", "%q is not an IPv4 address", l.IP)
	}
	if _, err := NormalizeMAC(l.MAC); err != nil {
		return err
	}
	if err := validName("subnet", l.Subnet); err != nil {
		return err
	}
	if err := validOneOf("state", string(l.State), string(LeaseOffered), string(LeaseActive), string(LeaseReleased), string(LeaseDeclined)); err != nil {
		return err
	}
	if l.Expires.Before(l.Starts) {
		return Invalid("expires", "is before starts")
	}
	return nil
}
