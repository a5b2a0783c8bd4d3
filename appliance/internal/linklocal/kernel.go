package linklocal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel is the Links of this host's kernel: addresses through netlink,
// gratuitous ARP through a packet socket. Both need CAP_NET_ADMIN (the
// packet socket CAP_NET_RAW).
type Kernel struct{}

// Hold adds p with link scope and the given lifetime, or renews it.
func (Kernel) Hold(ifname string, p netip.Prefix, lifetime time.Duration) error {
	link, err := linkByName(ifname)
	if err != nil {
		return err
	}
	secs := int(lifetime.Round(time.Second) / time.Second)
	secs = max(secs, 1)
	a := &netlink.Addr{IPNet: ipNet(p), Scope: int(netlink.SCOPE_LINK), ValidLft: secs, PreferedLft: secs}
	if err := netlink.AddrReplace(link, a); err != nil {
		return fmt.Errorf("linklocal: add %s to %s: %w%s", p, ifname, err, capHint(err))
	}
	return nil
}

// Drop removes p from the interface, if there.
func (Kernel) Drop(ifname string, p netip.Prefix) error {
	link, err := linkByName(ifname)
	if err != nil {
		return err
	}
	err = netlink.AddrDel(link, &netlink.Addr{IPNet: ipNet(p)})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("linklocal: remove %s from %s: %w%s", p, ifname, err, capHint(err))
	}
	return nil
}

// Announce broadcasts an ARP announcement of a (RFC 5227: a request
// whose sender and target addresses are both a) from the interface.
func (Kernel) Announce(ifname string, a netip.Addr) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("linklocal: interface %s: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("linklocal: interface %s has no Ethernet address", ifname)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linklocal: packet socket: %w%s", err, capHint(err))
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, announcement(ifi.HardwareAddr, a), 0, to); err != nil {
		return fmt.Errorf("linklocal: send ARP announcement on %s: %w%s", ifname, err, capHint(err))
	}
	return nil
}

// announcement is the ARP packet announcing that mac has a.
func announcement(mac net.HardwareAddr, a netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // protocol: IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1) // request
	copy(b[8:14], mac)
	ip := a.As4()
	copy(b[14:18], ip[:])
	// Target hardware address: zero, as RFC 5227 says.
	copy(b[24:28], ip[:])
	return b
}

func linkByName(ifname string) (netlink.Link, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("linklocal: interface %s: %w", ifname, err)
	}
	return link, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// capHint says what is missing when the kernel refused for want of a
// capability.
func capHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (needs CAP_NET_ADMIN and CAP_NET_RAW)"
	}
	return ""
}
