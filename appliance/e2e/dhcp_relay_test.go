package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// relayedSubnetYAML is the subnet behind the relay of
// TestDHCPRelayedClient: the relay's downstream address is its gateway.
const relayedSubnetYAML = `---
kind: subnet
name: rack2
cidr: 198.19.1.0/24
gateway: 198.19.1.1
pools:
- start: 198.19.1.100
  end: 198.19.1.110
discovery: true
`

// TestDHCPRelayedClient runs busybox udhcpc behind ISC's dhcrelay (a
// router between the boot network and a second subnet, 198.19.1.0/24):
// the client gets a lease through the relay (giaddr); then, with the
// relay stopped, it renews on SIGUSR1 by unicast straight to the server
// (giaddr empty, ciaddr its address) and, stopped, releases the same way:
// both are answered for the subnet ciaddr names, not the one the server
// received them on. (The relay is stopped because dhcrelay, listening on
// its downstream link, would also relay a copy of the unicast request.)
func TestDHCPRelayedClient(t *testing.T) {
	lab.Require(t, "udhcpc", "dhcrelay")
	b := newBootNet(t, bootNetConfig{})
	b.apply(bootSiteYAML(bootSite{}) + relayedSubnetYAML)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()

	// The relay: on the boot network at .3, routing to the client's
	// subnet; the server reaches that subnet through it.
	relay := b.attachHost("relay", "02:18:00:00:01:fe", "198.18.0.3/24")
	client := lab.NewNetns(t, "rclient")
	relay.VethPair(t, client, "down0", "198.19.1.1/24", "eth0", "")
	const mac = "02:18:00:00:01:01"
	for _, step := range []struct {
		ns   *lab.Netns
		args []string
	}{
		{relay, []string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}},
		{b.ns, []string{"ip", "route", "add", "198.19.1.0/24", "via", "198.18.0.3"}},
		{client, []string{"ip", "link", "set", "eth0", "down"}},
		{client, []string{"ip", "link", "set", "eth0", "address", mac}},
		{client, []string{"ip", "link", "set", "eth0", "up"}},
	} {
		if out, err := step.ns.Run(ctx, step.args[0], step.args[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(step.args, " "), err, out)
		}
	}
	dir := t.TempDir()
	rp := relay.Start(t, "dhcrelay", "-4", "-d", "-a", "-pf", filepath.Join(dir, "dhcrelay.pid"),
		"-iu", "eth0", "-id", "down0", bootServerIP)
	if _, err := rp.WaitForLine(ctx, regexp.MustCompile(`Sending on +Socket`)); err != nil {
		t.Fatalf("dhcrelay: %v", err)
	}

	c := &dhcpClient{host: client, mac: mac, dir: dir, script: filepath.Join(dir, "script"), events: filepath.Join(dir, "events")}
	if err := os.WriteFile(c.script, []byte(lab.RelayedUDHCPCScript(c.events)), 0o755); err != nil {
		t.Fatal(err)
	}
	p := client.Start(t, "udhcpc", "-f", "-R", "-i", "eth0", "-s", c.script, "-t", "10", "-T", "1", "-x", "hostname:rack2-host")
	obtained := regexp.MustCompile(`lease of (\S+) obtained`)
	waitClientLine(ctx, t, p, obtained)
	l1 := waitRelayedLease(t, b, mac, nil)
	if !c.hasAddr(t, l1.IP) {
		t.Fatalf("the client does not have %s", l1.IP)
	}
	rp.Kill()

	// SIGUSR1: RENEWING, a unicast REQUEST from the client's address.
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitClientLine(ctx, t, p, obtained)
	l2 := waitRelayedLease(t, b, mac, func(l store.Lease) error {
		if l.IP != l1.IP || !l.Expires.After(l1.Expires) {
			return fmt.Errorf("%s expires %v, want %s after %v", l.IP, l.Expires, l1.IP, l1.Expires)
		}
		return nil
	})
	t.Logf("renewed by unicast: %s expires %s -> %s", l2.IP, l1.Expires.Format(time.RFC3339Nano), l2.Expires.Format(time.RFC3339Nano))

	// SIGTERM under -R: a unicast RELEASE, then exit.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Errorf("udhcpc after SIGTERM: %v", err)
	}
	waitReleased(t, b, mac, l1.IP)
}

// waitRelayedLease waits for mac's active lease from the relayed
// subnet's pool that also passes check (nil: any).
func waitRelayedLease(t *testing.T, b *bootNet, mac string, check func(store.Lease) error) store.Lease {
	t.Helper()
	return b.waitLease(mac, func(l store.Lease) error {
		var d int
		if n, _ := fmt.Sscanf(l.IP, "198.19.1.%d", &d); n != 1 || d < 100 || d > 110 {
			return fmt.Errorf("%s is not in the pool 198.19.1.100-110", l.IP)
		}
		if l.State != store.LeaseActive || l.Subnet != "rack2" || l.Hostname != "rack2-host" {
			return fmt.Errorf("state %s subnet %q hostname %q, want active, rack2, rack2-host", l.State, l.Subnet, l.Hostname)
		}
		if check != nil {
			return check(l)
		}
		return nil
	})
}
