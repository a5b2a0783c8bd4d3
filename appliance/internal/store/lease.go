package store

import (
	"net/netip"
	"time"

	"github.com/outposthq/outpost/internal/errs"
	bolt "go.etcd.io/bbolt"
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
		return errs.Invalid("ip", "%q is not an IPv4 address", l.IP)
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
		return errs.Invalid("expires", "is before starts")
	}
	return nil
}

// Holds reports whether the lease keeps its address from everyone else at
// t: an offer or an active lease until it expires, and a declined address
// until its quarantine ends. A released or expired lease holds nothing.
func (l *Lease) Holds(t time.Time) bool {
	switch l.State {
	case LeaseOffered, LeaseActive, LeaseDeclined:
		return l.Expires.After(t)
	}
	return false
}

func leaseMACKey(subnet, mac string) []byte { return []byte(subnet + "/" + mac) }

// LeaseByMAC returns the MAC's lease in the subnet, if it has one.
func (tx *Tx) LeaseByMAC(subnet, mac string) (*Lease, error) {
	n, err := NormalizeMAC(mac)
	if err != nil {
		return nil, err
	}
	ip := tx.tx.Bucket(bucketLeaseMAC).Get(leaseMACKey(subnet, n))
	if ip == nil {
		return nil, errs.NotFound("lease for", subnet+"/"+n)
	}
	return Get[Lease](tx, string(ip))
}

// UnsafePutLease stores a lease over cur, the lease stored at its address
// as the caller read it in this transaction (nil if none), and keeps the
// index of leases by MAC: a MAC has at most one lease per subnet, so its
// lease at another address is dropped; a declined lease quarantines its
// address and belongs to no MAC. Whether the address is free for the MAC
// is the caller's rule.
func (tx *Tx) UnsafePutLease(l, cur *Lease, w Write) error {
	mac, err := NormalizeMAC(l.MAC)
	if err != nil {
		return err
	}
	l.MAC = mac
	idx := tx.tx.Bucket(bucketLeaseMAC)
	if cur != nil {
		// The address changes hands (or state): the old holder's index
		// entry goes if it pointed here.
		if err := deleteIfEquals(idx, leaseMACKey(cur.Subnet, cur.MAC), l.IP); err != nil {
			return err
		}
	}
	key := leaseMACKey(l.Subnet, l.MAC)
	if l.State == LeaseDeclined {
		return tx.putLeaseRecord(l, cur, w)
	}
	if prev := idx.Get(key); prev != nil && string(prev) != l.IP {
		if err := tx.tx.Bucket(bucketLeases).Delete(prev); err != nil {
			return err
		}
	}
	if err := idx.Put(key, []byte(l.IP)); err != nil {
		return err
	}
	return tx.putLeaseRecord(l, cur, w)
}

func (tx *Tx) putRaw(o Object, w Write) error {
	_, err := tx.unsafePut(o, w)
	return err
}

// UnsafeDeleteLease removes a lease (an operator freeing an address, or the
// reclaimer removing one long expired).
func (tx *Tx) UnsafeDeleteLease(ip string, expect uint64) error {
	cur, err := Get[Lease](tx, ip)
	if err != nil {
		return err
	}
	if _, err := tx.unsafeDelete(cur, ip, expect); err != nil {
		return err
	}
	if err := deleteIfEquals(tx.tx.Bucket(bucketLeaseMAC), leaseMACKey(cur.Subnet, cur.MAC), ip); err != nil {
		return err
	}
	return tx.bumpIPAMGen()
}

func deleteIfEquals(b *bolt.Bucket, key []byte, value string) error {
	if v := b.Get(key); v != nil && string(v) == value {
		return b.Delete(key)
	}
	return nil
}

func isNotFound(err error) bool {
	e, ok := errs.AsError(err)
	return ok && e.Code == errs.CodeNotFound
}
