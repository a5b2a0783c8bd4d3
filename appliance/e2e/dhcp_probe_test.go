package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestDHCPProbeConflict: a host the site does not know holds the pool's
// first address (its kernel answers ARP). The DHCP server probes that
// address before offering it, quarantines it and says so in an event
// naming the address, the host's MAC and the subnet; the client gets
// another address. A relayed subnet is not probed (its clients are not
// on the server's link), as TestDHCPRelayedClient serves one.
func TestDHCPProbeConflict(t *testing.T) {
	s := startNetSite(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const squatted = "198.18.0.100"
	squatter := attachToSwitch(t, s.sw, "squatter", squatted+"/24")
	out, err := squatter.Run(ctx, "cat", "/sys/class/net/"+siteIface+"/address")
	if err != nil {
		t.Fatalf("squatter's MAC: %v", err)
	}
	squatterMAC := strings.TrimSpace(out)
	sub := store.Subnet{CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: squatted, End: "198.18.0.110"}}, Discovery: true}
	if err := s.api("n1").Put(ctx, "subnets", "lab", sub, nil); err != nil {
		t.Fatalf("put subnet: %v", err)
	}
	tap := newDHCPTap(t, s.client, siteIface)
	var got netip.Addr
	s.waitFor(30*time.Second, "an ACK", func() error {
		ack, err := tap.dora(ctx, failoverMAC(0x100), doraTimeout, doraTries)
		if err != nil {
			return err
		}
		got, _ = netip.AddrFromSlice(ack.YourIPAddr.To4())
		return nil
	})
	if got.String() == squatted {
		t.Fatalf("the client was given %s, which %s holds", got, squatterMAC)
	}
	t.Logf("the client got %s", got)
	for _, r := range tap.replies() {
		if r.yiaddr.String() == squatted {
			t.Errorf("a %s offered %s, which %s holds", r.typ, squatted, squatterMAC)
		}
	}
	events, _, err := s.api("n1").Events(ctx, 0, 1000)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	want := map[string]string{"ip": squatted, "mac": squatterMAC, "subnet": "lab"}
	for _, ev := range events {
		if ev.Kind == "dhcp.address_conflict" && ev.Fields["ip"] == want["ip"] && ev.Fields["mac"] == want["mac"] && ev.Fields["subnet"] == want["subnet"] {
			t.Logf("event: %s", ev.Message)
			return
		}
	}
	t.Fatalf("no dhcp.address_conflict event with %v among %s", want, describeEvents(events))
}

func describeEvents(events []store.Event) string {
	var b strings.Builder
	for _, ev := range events {
		fmt.Fprintf(&b, "\n  %s %s %v", ev.Kind, ev.Message, ev.Fields)
	}
	return b.String()
}
