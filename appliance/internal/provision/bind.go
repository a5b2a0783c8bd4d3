package provision

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Binding is what ties a machine's agent credentials to the address of
// the machine (see the package comment).
type Binding int

const (
	// BindLease: a credential is given to, and accepted from, an address
	// the appliance's DHCP server has actively leased to one of the
	// machine's MACs. A machine with a reserved address leases it too.
	BindLease Binding = iota
	// BindFirstClaim is for appliances that lease no addresses
	// (proxyDHCP, or another DHCP server on the boot network): the first
	// address to claim a workflow's credential after the workflow began
	// is recorded through the site's log (site.BindWorkflow), and only
	// that address may use it. A lease, if one exists, admits too.
	BindFirstClaim
)

// SourceAddr is the request's source IP address, from its connection (no
// header can name it), IPv4 unmapped and without an IPv6 zone.
func SourceAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cannot tell the source address %q", r.RemoteAddr)
	}
	return ap.Addr().Unmap().WithZone(""), nil
}

// LeasedMAC returns the MAC that holds an active lease on addr at now, or
// "" if none does. Offered and declined leases name nobody: the client has
// not taken the address, or someone else uses it.
func LeasedMAC(tx *store.Tx, addr netip.Addr, now time.Time) (string, error) {
	l, err := store.Get[store.Lease](tx, addr.String())
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case l.State != store.LeaseActive || !l.Holds(now):
		return "", nil
	}
	return l.MAC, nil
}

// Admits reports whether workflow w's credential may be given to, or used
// from, addr at now: addr is the address recorded as w's (BindFirstClaim),
// or, when none is, an address actively leased to one of its machine's
// MACs.
func Admits(tx *store.Tx, w *store.Workflow, addr netip.Addr, now time.Time) (bool, error) {
	if w.BootAddr != "" {
		return w.BootAddr == addr.String(), nil
	}
	mac, err := LeasedMAC(tx, addr, now)
	if err != nil || mac == "" {
		return false, err
	}
	m, err := tx.MachineByMAC(mac)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return m.ID == w.MachineID, nil
}

// Claimable reports whether addr may claim w's credential under
// BindFirstClaim: w is active and no address has claimed it yet.
func Claimable(w *store.Workflow) bool {
	return w.BootAddr == "" && w.Active()
}
