package site

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Leases. The state machine has the last word on "never two MACs": an
// address another MAC holds at the command's time is refused, whoever
// proposed it.

// applyCommitLease applies the DHCP server's lease and says whether it
// renewed the client's lease, deciding from the state it applies to (the
// DHCP path reads nothing to tell). A known machine's new lease goes on
// its timeline; renewals, which come every half lease, and other states
// do not.
func applyCommitLease(tx *store.Tx, payload []byte, index uint64) (any, error) {
	l, err := decodeLeaseCommit(payload)
	if err != nil {
		panic(fmt.Sprintf("site: decode the lease at index %d: %v", index, err))
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	w := store.Write{Index: index, Time: l.Starts, By: ActorDHCP}
	cur, err := putLease(tx, l, w)
	if err != nil {
		return nil, err
	}
	renewed := cur != nil && cur.MAC == l.MAC && cur.State == store.LeaseActive && l.State == store.LeaseActive
	if l.MachineID != "" && l.State == store.LeaseActive && !renewed {
		if err := event(tx, w, store.Event{MachineID: l.MachineID, Kind: "dhcp.lease",
			Message: "leased " + l.IP + " on " + l.Subnet, Fields: map[string]string{"ip": l.IP, "mac": l.MAC}}); err != nil {
			return nil, err
		}
	}
	return &LeaseResult{Renewed: renewed}, nil
}

// applyPutLease stores a lease given whole (PutLease).
func applyPutLease(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Put[store.Lease]
	command.MustDecode(payload, &req, index)
	if req.Object == nil {
		return nil, errs.Invalid("object", "is required")
	}
	l := req.Object
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	w := store.Write{Expect: req.Expect, Index: index, Time: req.Time, By: req.By}
	if _, err := putLease(tx, l, w); err != nil {
		return nil, err
	}
	return l, appendEvents(tx, req.Events, w)
}

// putLease stores l after the rules: its subnet exists and contains its
// address, and no other MAC holds the address at w.Time. It returns the
// lease it replaced at the address, if any.
func putLease(tx *store.Tx, l *store.Lease, w store.Write) (*store.Lease, error) {
	mac, err := store.NormalizeMAC(l.MAC)
	if err != nil {
		return nil, err
	}
	l.MAC = mac
	prefix, cidr, err := subnetPrefix(tx, l.Subnet)
	if err != nil {
		return nil, err
	}
	if ip := netip.MustParseAddr(l.IP); !prefix.Contains(ip) {
		return nil, errs.Invalid("ip", "%s is outside subnet %s (%s)", l.IP, l.Subnet, cidr)
	}
	cur, err := store.Get[store.Lease](tx, l.IP)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return nil, err
	}
	if cur != nil && cur.MAC != l.MAC && cur.Holds(w.Time) {
		return nil, errs.Conflict("address %s is held by %s (%s) until %s", l.IP, cur.MAC, cur.State, cur.Expires.Format(time.RFC3339))
	}
	return cur, tx.UnsafePutLease(l, cur, w)
}

// subnetPrefix reads only a subnet's prefix, and its CIDR as written
// (this runs for every lease of a boot storm). What a subnet's stored
// bytes say is remembered (subnetPrefixes), so a lease decodes its
// subnet only when the subnet changed.
func subnetPrefix(tx *store.Tx, name string) (netip.Prefix, string, error) {
	raw := tx.Raw(&store.Subnet{}, name)
	if raw == nil {
		return netip.Prefix{}, "", errs.Invalid("subnet", "no subnet %q", name)
	}
	if p, ok := subnetPrefixes.get(name, raw); ok {
		return p.prefix, p.cidr, nil
	}
	var sub struct{ CIDR string }
	if err := json.Unmarshal(raw, &sub); err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%w: subnet %q: %v", store.ErrCorrupt, name, err)
	}
	prefix, err := netip.ParsePrefix(sub.CIDR)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%w: subnet %q has CIDR %q", store.ErrCorrupt, name, sub.CIDR)
	}
	subnetPrefixes.put(name, raw, subnetCIDR{prefix.Masked(), sub.CIDR})
	return prefix.Masked(), sub.CIDR, nil
}

// subnetCIDR is what subnetPrefix reads of a subnet.
type subnetCIDR struct {
	prefix netip.Prefix
	cidr   string
}

// prefixCache remembers subnetPrefix's answers by subnet name and the
// exact bytes stored: a function of the bytes alone, so every node
// answers the same whether it remembered or decoded.
type prefixCache struct {
	mu      sync.Mutex
	subnets map[string]cachedSubnet
}

type cachedSubnet struct {
	raw []byte // a copy: bbolt's bytes live only as long as their tx
	subnetCIDR
}

// maxCachedSubnets bounds the cache; past it, it starts again.
const maxCachedSubnets = 1024

var subnetPrefixes prefixCache

func (c *prefixCache) get(name string, raw []byte) (subnetCIDR, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.subnets[name]
	if !ok || !bytes.Equal(e.raw, raw) {
		return subnetCIDR{}, false
	}
	return e.subnetCIDR, true
}

func (c *prefixCache) put(name string, raw []byte, v subnetCIDR) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subnets == nil || len(c.subnets) >= maxCachedSubnets {
		c.subnets = make(map[string]cachedSubnet)
	}
	c.subnets[name] = cachedSubnet{raw: bytes.Clone(raw), subnetCIDR: v}
}
