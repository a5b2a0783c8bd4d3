package lab

import (
	"errors"
	"net"
	"strconv"
	"syscall"
)

// AnswerRouterSolicitations answers IPv6 router solicitations arriving on
// iface with an empty router advertisement (no prefix, no managed or
// other flag, router lifetime 0: not a default router), until the test
// ends. No IPv6 address is configured and no address leaves the link.
//
// Why: iPXE's autoboot configures a NIC with DHCPv4 and IPv6 router
// discovery together and waits for both. With no router on the link the
// IPv6 half gives up only after about 15 s of solicitations, which is
// most of a BIOS network boot under emulation; one advertisement ends it
// at once.
func (n *Netns) AnswerRouterSolicitations(t T, iface string) {
	t.Helper()
	var (
		conn  *net.IPConn
		index int
	)
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		index = ifi.Index
		pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		conn = pc.(*net.IPConn)
		return nil
	})
	if err != nil {
		t.Fatalf("lab: router advertisements on %s: %v", iface, err)
	}
	if err := prepareRASocket(conn, index, iface); err != nil {
		conn.Close()
		t.Fatalf("lab: router advertisements on %s: %v", iface, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	go func() {
		defer close(done)
		answerRouterSolicitations(t, conn, iface, index)
	}()
}

// prepareRASocket joins all-routers on the interface, where solicitations
// are sent, and sets the hop limit NDP requires (255).
func prepareRASocket(conn *net.IPConn, index int, iface string) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		mreq := &syscall.IPv6Mreq{Interface: uint32(index)}
		copy(mreq.Multiaddr[:], net.ParseIP("ff02::2").To16())
		if serr = syscall.SetsockoptIPv6Mreq(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_JOIN_GROUP, mreq); serr != nil {
			return
		}
		if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, 255); serr != nil {
			return
		}
		if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, 255); serr != nil {
			return
		}
		// Bound to the interface: the socket sees only its
		// solicitations, and its sends leave by it. (Go's zone names
		// come from a process-wide index table that namespaces confuse,
		// so zones are not used to filter or route.)
		serr = syscall.BindToDevice(int(fd), iface)
	})
	return errors.Join(err, serr)
}

// answerRouterSolicitations serves conn until it is closed.
func answerRouterSolicitations(t T, conn *net.IPConn, iface string, index int) {
	const (
		routerSolicitation  = 133
		routerAdvertisement = 134
	)
	// Type, code, checksum (the kernel fills it in), current hop limit,
	// flags, router lifetime, reachable time, retransmission timer: all 0.
	ra := make([]byte, 16)
	ra[0] = routerAdvertisement
	allNodes := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: strconv.Itoa(index)}
	buf := make([]byte, 1500)
	for {
		nr, _, err := conn.ReadFromIP(buf)
		if err != nil {
			return // closed
		}
		if nr < 8 || buf[0] != routerSolicitation || buf[1] != 0 {
			continue
		}
		if _, err := conn.WriteToIP(ra, allNodes); err != nil {
			t.Logf("lab: router advertisement on %s: %v", iface, err)
		}
	}
}
