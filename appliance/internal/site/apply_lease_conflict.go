package site

import (
	"errors"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// AddressConflict is the payload of QuarantineAddress: the DHCP server
// probed (ARP, RFC 5227) an address it was about to offer, which no
// lease held, and a host answered from MAC. The address is quarantined
// until Until, for every client, as a declined lease of MAC's: every
// node's allocator, and a new leader's, leaves it out.
type AddressConflict struct {
	IP     string    `json:"ip"`
	Subnet string    `json:"subnet"`
	MAC    string    `json:"mac"`
	Time   time.Time `json:"time"`
	Until  time.Time `json:"until"`
	By     string    `json:"by,omitempty"`
}

// EventAddressConflict is the kind of the event QuarantineAddress records.
const EventAddressConflict = "dhcp.address_conflict"

// applyQuarantineAddress quarantines the address, unless a lease holds
// it at the command's time (a client got it since the probe: the host
// that answered may be that client) or the payload is malformed; a
// refusal changes nothing.
func applyQuarantineAddress(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var q AddressConflict
	command.MustDecode(payload, &q, index)
	if q.Time.IsZero() {
		return nil, errs.Invalid("time", "is required")
	}
	if !q.Until.After(q.Time) {
		return nil, errs.Invalid("until", "%s is not after the probe's time %s", q.Until.Format(time.RFC3339), q.Time.Format(time.RFC3339))
	}
	l := &store.Lease{IP: q.IP, MAC: q.MAC, Subnet: q.Subnet, State: store.LeaseDeclined, Starts: q.Time.UTC(), Expires: q.Until.UTC()}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	cur, err := store.Get[store.Lease](tx, l.IP)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return nil, err
	}
	if cur != nil && cur.State != store.LeaseDeclined && cur.Holds(q.Time) {
		return nil, errs.Conflict("address %s is leased to %s (%s) until %s: not quarantined", l.IP, cur.MAC, cur.State, cur.Expires.Format(time.RFC3339))
	}
	w := store.Write{Index: index, Time: q.Time, By: q.By}
	if _, err := putLease(tx, l, w); err != nil {
		return nil, err
	}
	return l, event(tx, w, store.Event{Kind: EventAddressConflict,
		Message: "address " + l.IP + " on " + l.Subnet + " answered an ARP probe from " + l.MAC + ": quarantined until " + l.Expires.Format(time.RFC3339),
		Fields:  map[string]string{"ip": l.IP, "mac": l.MAC, "subnet": l.Subnet, "until": l.Expires.Format(time.RFC3339)}})
}
