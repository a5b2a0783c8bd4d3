package labsite

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The routed subnet of a virtual-media machine (AddVMediaMachine): a
// second bridge in the site's namespace, which routes between it and the
// appliance's address on the boot network. The appliance answers no DHCP
// on it (boot: vmedia); its machines take static addresses from IPAM,
// from RoutedFirst on.
const (
	RoutedBridge     = "br9"
	RoutedGateway    = "198.18.9.1"
	RoutedSubnetName = "routed"
	RoutedFirst      = "198.18.9.100"
	routedTap        = "vmtap9"
)

// VMediaMachine is a VM behind the lab's Redfish BMC on the routed
// subnet: the BMC starts QEMU on power on, and its virtual CD is QEMU's
// CD-ROM. Serial is the file of the VM's serial console.
type VMediaMachine struct {
	BMC    *lab.RedfishBMC
	Serial string
}

// AddVMediaMachine makes the routed subnet (once per site: it has one
// tap), puts a VM with mac on it behind a Redfish BMC, stores machine id
// with that BMC, and accepts the BMC's certificate through the API as an
// operator would, so that a provision order for id can drive it.
func (s *Site) AddVMediaMachine(t lab.T, id, mac string) *VMediaMachine {
	t.Helper()
	s.NS.Bridge(RoutedBridge, RoutedGateway+"/24")
	s.NS.Tap(routedTap, RoutedBridge)
	s.Put(t, &store.Subnet{Name: RoutedSubnetName, CIDR: "198.18.9.0/24", Gateway: RoutedGateway, DNS: []string{RoutedGateway},
		Pools: []store.Range{{Start: RoutedFirst, End: "198.18.9.200"}}, Boot: store.BootVirtualMedia})

	args, serial := lab.VMCommand(t, lab.VMConfig{Tap: routedTap, MAC: mac, MemoryMB: 1024, Disks: []string{NewDisk(t, 256<<20)}})
	rf := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{Netns: s.NS, VM: args})
	m := Machine(id, mac)
	m.Interfaces[0].Subnet = RoutedSubnetName
	m.BMC = &store.BMC{Address: rf.Addr, Driver: "redfish", Username: rf.Username, Password: rf.Password}
	s.Put(t, m)
	fp := fingerprint(rf.Certificate().Certificate[0])
	if err := s.API.Do(t.Context(), "POST", "/v1/machines/"+id+"/bmc/accept-certificate", map[string]string{"fingerprint": fp}, nil); err != nil {
		t.Fatalf("labsite: accept %s's BMC certificate %s: %v", id, fp, err)
	}
	return &VMediaMachine{BMC: rf, Serial: serial}
}

// ProvisionOrder is a provision order for machine with the lab's install
// template (kexec) and the test OS, its hostname given.
func ProvisionOrder(id, machine, hostname string) *store.Order {
	return &store.Order{ID: id, Action: store.OrderProvision, MachineID: machine,
		Template: TemplateName, Image: TestOSName, Values: map[string]string{"hostname": hostname}}
}

// fingerprint is a certificate's fingerprint as the API takes it
// (bmc.Fingerprint's form, which labsite cannot import: bmc's tests
// import labsite).
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}
