package metadata

import (
	"net/http"
	"net/netip"
	"strconv"
)

// nocloudMeta is NoCloud's meta-data.
type nocloudMeta struct {
	InstanceID    string   `json:"instance-id"`
	LocalHostname string   `json:"local-hostname"`
	PublicKeys    []string `json:"public-keys,omitempty"`
}

func nocloudMetaData(w http.ResponseWriter, _ *http.Request, in *instance) {
	writeYAML(w, nocloudMeta{InstanceID: in.machine.ID, LocalHostname: in.hostname(), PublicKeys: in.keys()})
}

// emptyCloudConfig is NoCloud's user-data for a machine that has none:
// cloud-init requires the file.
const emptyCloudConfig = "#cloud-config\n{}\n"

func nocloudUserData(w http.ResponseWriter, _ *http.Request, in *instance) {
	ud, ok := in.userData()
	if !ok {
		ud = emptyCloudConfig
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write([]byte(ud))
}

// networkConfig is cloud-init's network configuration, version 2 (netplan's
// format).
type networkConfig struct {
	Version   int                 `json:"version"`
	Ethernets map[string]ethernet `json:"ethernets"`
}

type ethernet struct {
	Match       match        `json:"match"`
	DHCP4       bool         `json:"dhcp4"`
	Addresses   []string     `json:"addresses,omitempty"`
	Routes      []netRoute   `json:"routes,omitempty"`
	Nameservers *nameservers `json:"nameservers,omitempty"`
}

type match struct {
	MACAddress string `json:"macaddress"`
}

type netRoute struct {
	To  string `json:"to"`
	Via string `json:"via"`
}

type nameservers struct {
	Addresses []string `json:"addresses,omitempty"`
	Search    []string `json:"search,omitempty"`
}

// nocloudNetworkConfig configures the interface the machine asked from:
// its reserved address, when it has one and its subnet is known, else
// DHCP.
func nocloudNetworkConfig(w http.ResponseWriter, _ *http.Request, in *instance) {
	nic := in.machine.Interfaces[in.nic]
	name := nic.Name
	if name == "" {
		name = "nic" + strconv.Itoa(in.nic)
	}
	eth := ethernet{Match: match{MACAddress: in.mac}, DHCP4: true}
	if ip, err := netip.ParseAddr(nic.IP); err == nil && ip == in.addr && in.subnet != nil {
		eth = staticEthernet(eth.Match, ip, in)
	}
	writeYAML(w, networkConfig{Version: 2, Ethernets: map[string]ethernet{name: eth}})
}

func staticEthernet(m match, ip netip.Addr, in *instance) ethernet {
	sub := in.subnet
	eth := ethernet{Match: m, Addresses: []string{netip.PrefixFrom(ip, sub.Prefix().Bits()).String()}}
	if sub.Gateway != "" {
		// 0.0.0.0/0 rather than "default": every cloud-init renderer reads it.
		eth.Routes = []netRoute{{To: "0.0.0.0/0", Via: sub.Gateway}}
	}
	if len(sub.DNS) > 0 || sub.Domain != "" {
		eth.Nameservers = &nameservers{Addresses: sub.DNS}
		if sub.Domain != "" {
			eth.Nameservers.Search = []string{sub.Domain}
		}
	}
	return eth
}
