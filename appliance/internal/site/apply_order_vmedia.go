package site

import (
	"net/netip"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Orders on a subnet that boots from virtual media (store.Subnet.Boot).
// The appliance answers no DHCP there, so an order's machine boots the
// installer from an ISO in its BMC's virtual CD drive, with the static
// address IPAM gives its boot interface: its jobs are "insert media →
// boot CD once → power cycle" rather than "PXE once → power cycle", and
// its workflow is bound to that address (Workflow.BootAddr) from the
// start, so the agent API accepts the installer's requests from it and
// from no other address.

// bootJobs are the jobs, by id suffix and action, that boot an order's
// machine into the installer, before its power cycle.
var (
	pxeJobs    = [][2]string{{"pxe", store.JobBootPXE}}
	vmediaJobs = [][2]string{{"media", store.JobInsertMedia}, {"cd", store.JobBootCD}}
)

// vmediaJobIDs returns vmediaJobs, refusing order o if an earlier job
// took one of their ids. (orderMachine checks the ids every order may
// take, as it did before virtual media: a replayed log decides the same.)
func vmediaJobIDs(tx *store.Tx, o *store.Order) ([][2]string, error) {
	for _, j := range vmediaJobs {
		if _, err := store.Get[store.Job](tx, o.ID+"-"+j[0]); err == nil {
			return nil, errs.Conflict("job %s-%s of an earlier order %s exists: delete it or choose another order id", o.ID, j[0], o.ID)
		}
	}
	return vmediaJobs, nil
}

// vmediaAddress is the static address machine m boots the installer
// with when its boot interface's subnet boots from virtual media, valid
// or not: res's, if the order reserves one, else the interface's own.
// It reports false when the subnet boots from the network. It writes
// nothing, and refuses a machine on such a subnet with no address.
func vmediaAddress(tx *store.Tx, m *store.Machine, res *reservation) (netip.Addr, bool, error) {
	i := bootInterface(m)
	if i < 0 {
		return netip.Addr{}, false, nil
	}
	iface := m.Interfaces[i]
	ip, subnet := iface.IP, iface.Subnet
	if res != nil {
		ip, subnet = res.ip, res.subnet
	}
	sub, err := addressSubnet(tx, subnet, ip)
	if err != nil || sub == nil || !sub.VirtualMedia() {
		return netip.Addr{}, false, err
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, true, errs.Invalid("machine_id",
			"machine %q boots from virtual media on subnet %s but its boot interface has no address: give it one, or provision it to have IPAM choose one", m.ID, sub.Name)
	}
	return a, true, nil
}

// addressSubnet is the subnet named name, else the one whose prefix
// holds ip; nil if there is none.
func addressSubnet(tx *store.Tx, name, ip string) (*store.Subnet, error) {
	if name != "" {
		if s, err := store.Get[store.Subnet](tx, name); err == nil {
			return s, nil
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, nil
	}
	subnets, err := store.List[store.Subnet](tx)
	if err != nil {
		return nil, err
	}
	for _, s := range subnets {
		if s.Prefix().Contains(a) {
			return s, nil
		}
	}
	return nil, nil
}
