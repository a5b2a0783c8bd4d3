package ipam_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/outposthq/outpost/appliance/internal/ipam"
)

// A DHCP server's use of an allocator: offer on DISCOVER, check on
// REQUEST, and observe what the store committed.
func Example() {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	subnet := ipam.Subnet{
		Prefix:   netip.MustParsePrefix("198.18.0.0/24"),
		Gateway:  netip.MustParseAddr("198.18.0.1"),
		Pools:    []ipam.Range{{Start: netip.MustParseAddr("198.18.0.100"), End: netip.MustParseAddr("198.18.0.199")}},
		Reserved: []ipam.Range{{Start: netip.MustParseAddr("198.18.0.2"), End: netip.MustParseAddr("198.18.0.99")}},
		Lease:    time.Hour,
	}
	machines := map[string]netip.Addr{"02:00:00:00:00:01": netip.MustParseAddr("198.18.0.10")}
	a, err := ipam.New(subnet, machines, nil, now)
	if err != nil {
		panic(err)
	}

	// DISCOVER from a known machine and from an unknown one.
	for _, mac := range []string{"02:00:00:00:00:01", "02:00:00:00:00:aa"} {
		ip, err := a.Offer(mac, netip.Addr{}, now, now.Add(10*time.Second))
		fmt.Println(mac, "offered", ip, err)
	}

	// REQUEST: the unknown machine takes its offer; another asks for it.
	ip := netip.MustParseAddr("198.18.0.100")
	fmt.Println(a.Check("02:00:00:00:00:aa", ip, now))
	fmt.Println(a.Check("02:00:00:00:00:bb", ip, now))

	// The store committed the lease; the DHCP server tells the allocator.
	err = a.Observe(ipam.Lease{IP: ip, MAC: "02:00:00:00:00:aa", State: ipam.Active, Expires: now.Add(subnet.Lease)})
	fmt.Printf("%v %+v\n", err, a.Stats(now))
	// Output:
	// 02:00:00:00:00:01 offered 198.18.0.10 <nil>
	// 02:00:00:00:00:aa offered 198.18.0.100 <nil>
	// <nil>
	// ipam: address taken: 198.18.0.100 is offered to 02:00:00:00:00:aa until 2026-03-01T10:00:10Z
	// <nil> {Size:100 Free:99 Leased:1 Held:0 Declined:0 Reservations:1}
}
