package site

import (
	"errors"
	"net/netip"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Commands of earlier releases whose meaning has changed since. A log
// written by release b482c18 or earlier may hold them; every node must
// apply them as that release did, or a node replaying its log would come
// to another state than one that applied them then. Nothing proposes
// them any more.
//
// PutTokenV1 made admin tokens, as every token was then; CreateToken
// makes a token with its role (apply_token.go).
//
// PutOrderV1 and ApplyDesiredV1 chose a provision's address with their
// own policy (the lowest free pool address); PlaceOrder and ApplyDesired
// ask the site's allocator (address.go). Neither made an order wait for
// its artifacts, nor kept artifact records (apply_wait.go).
//
// PutSubnetV1 (release 79f7034 and earlier) stored any valid subnet, one
// no DHCP server can serve (0.0.0.0/0) or one overlapping another
// included; it is applied by applyPut as it was. PutSubnetV2 (release
// b7e757c and earlier) refused those but took a gateway on the subnet's
// network or broadcast address, which the allocator then refused, leaving
// the subnet unserved. PutSubnet refuses both (apply_subnet.go).

func applyPutOrderV1(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return applyOrder(tx, payload, index, v1Rules)
}

func applyDesiredV1(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DesiredPayload
	command.MustDecode(payload, &req, index)
	return applyRevision(tx, &req.Desired, store.Write{Index: index, Time: req.Time, By: req.By}, v1Rules)
}

// PutImageV1 and DeleteImageV1 (release e85a6fa and earlier) stored and
// deleted images alone; PutImage and DeleteImage keep the artifact
// records following them. PlaceOrderV2 and ApplyDesiredV2 (the same
// releases) asked the allocator but never made an order wait for its
// artifacts; PlaceOrder and ApplyDesired do, and bring the records up to
// date first, so that a site upgraded with images but no records yet
// comes to have them (and pulls what they name) at its first order.

func applyPlaceOrderV2(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return applyOrder(tx, payload, index, v2Rules)
}

// applyDiscoverV1 applies a discovery as Discover does, but its event
// has no record of the machine, as releases up to 6856dfc recorded it.
func applyDiscoverV1(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DiscoverPayload
	command.MustDecode(payload, &req, index)
	return discover(tx, &req, index, discoveredV1)
}

// applyDiscoverV2 applies a discovery as Discover does, but its event
// has no vendor or product, as releases up to 96fac4a recorded it.
func applyDiscoverV2(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DiscoverPayload
	command.MustDecode(payload, &req, index)
	return discover(tx, &req, index, discoveredV2)
}

// applyDesiredV3 applies a revision as ApplyDesired does, but records
// no event of the machines it puts and deletes, as releases up to
// 6856dfc did.
func applyDesiredV3(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DesiredPayload
	command.MustDecode(payload, &req, index)
	return applyRevision(tx, &req.Desired, store.Write{Index: index, Time: req.Time, By: req.By}, orderRules{choose: chooseBootAddress, waits: true})
}

func applyDesiredV2(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DesiredPayload
	command.MustDecode(payload, &req, index)
	return applyRevision(tx, &req.Desired, store.Write{Index: index, Time: req.Time, By: req.By}, v2Rules)
}

// v2Rules are PlaceOrderV2's and ApplyDesiredV2's: the allocator's
// address, no waiting for artifacts.
var v2Rules = orderRules{choose: chooseBootAddress}

// v1Rules are the order rules of PutOrderV1 and ApplyDesiredV1: the
// lowest free address, and no waiting for artifacts (nor any record of
// them: their images changed no artifact record).
var v1Rules = orderRules{choose: chooseLowestAddress}

// chooseLowestAddress is release b482c18's address choice: none if the
// boot interface reserves one; the address its MAC holds a lease for;
// else the lowest address of a pool of the interface's subnet (or of the
// site's only subnet with pools) that no machine reserves, nobody else
// holds a lease on, and no reserved range holds.
func chooseLowestAddress(tx *store.Tx, m *store.Machine, now time.Time) (*reservation, error) {
	i, subnets, err := needsAddress(tx, m)
	if i < 0 || err != nil {
		return nil, err
	}
	iface := m.Interfaces[i]
	if l, s, err := heldLease(tx, iface, subnets, now); err != nil || l != nil {
		if l == nil {
			return nil, err
		}
		return &reservation{iface: i, ip: l.IP, subnet: s.Name}, nil
	}
	subnet, err := poolSubnet(m, i, subnets)
	if err != nil {
		return nil, err
	}
	taken, err := tx.Reservations()
	if err != nil {
		return nil, err
	}
	ip, err := lowestFree(tx, subnet, taken, iface.MAC, now)
	if err != nil {
		return nil, err
	}
	if ip == "" {
		return nil, errs.Conflict("subnet %s has no free address in its pools for machine %q", subnet.Name, m.ID)
	}
	return &reservation{iface: i, ip: ip, subnet: subnet.Name}, nil
}

// lowestFree is the lowest pool address of subnet that is free for mac,
// "" if none is.
func lowestFree(tx *store.Tx, subnet *store.Subnet, taken []store.Reservation, mac string, now time.Time) (string, error) {
	reserved := make(map[netip.Addr]bool, len(taken))
	for _, r := range taken {
		reserved[r.IP] = true
	}
	excluded := func(a netip.Addr) bool {
		for _, r := range subnet.Reserved {
			if inRange(a, r) {
				return true
			}
		}
		return reserved[a]
	}
	for _, r := range subnet.Pools {
		start, err1 := netip.ParseAddr(r.Start)
		end, err2 := netip.ParseAddr(r.End)
		if err1 != nil || err2 != nil {
			continue
		}
		for a := start; a.IsValid() && a.Compare(end) <= 0; a = a.Next() {
			if excluded(a) {
				continue
			}
			l, err := store.Get[store.Lease](tx, a.String())
			if err == nil && l.Holds(now) && l.MAC != mac {
				continue
			} else if err != nil && !errors.Is(err, errs.ErrNotFound) {
				return "", err
			}
			return a.String(), nil
		}
	}
	return "", nil
}

func inRange(a netip.Addr, r store.Range) bool {
	start, err1 := netip.ParseAddr(r.Start)
	end, err2 := netip.ParseAddr(r.End)
	return err1 == nil && err2 == nil && a.Compare(start) >= 0 && a.Compare(end) <= 0
}

// applyPutTokenV1 stores a token as PutToken of release b482c18 did: that
// release had no roles, and every token it made is an admin's; a role or
// an expiry in the payload (which that release never wrote) is dropped.
func applyPutTokenV1(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Put[store.Token]
	command.MustDecode(payload, &req, index)
	if req.Object != nil {
		req.Object.Grant = access.Grant{}
	}
	return putObject(tx, &req, index)
}
