package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// clientScript is the dhclient and udhcpc script of the client tests. It
// configures the address it is given (so that the client can renew and
// release by unicast, as a real host does) and nothing else: no routes,
// no resolv.conf, which a namespace shares with the host. Each call is
// recorded in LOG: the event, then address, mask, router, lease time and
// server identifier as the client understood them.
const clientScript = `#!/bin/sh
PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH
if [ -n "$reason" ]; then # dhclient
	echo "$reason $new_ip_address $new_subnet_mask $new_routers $new_dhcp_lease_time $new_dhcp_server_identifier" >>LOG
	case $reason in
	BOUND|RENEW|REBIND|REBOOT) exec ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
	EXPIRE|FAIL|RELEASE|STOP) exec ip addr flush dev "$interface" ;;
	esac
else # udhcpc
	echo "$1 $ip $subnet $router $lease $serverid" >>LOG
	case $1 in
	bound|renew) exec ip addr replace "$ip/$mask" dev "$interface" ;;
	deconfig) exec ip addr flush dev "$interface" ;;
	esac
fi
exit 0
`

// dhcpClient is the scratch state of one DHCP client host.
type dhcpClient struct {
	host   *lab.Netns
	mac    string
	script string // clientScript
	events string // its LOG
	dir    string
}

func newDHCPClient(t *testing.T, b *bootNet, name, mac string) *dhcpClient {
	t.Helper()
	c := &dhcpClient{host: b.attachHost(name, mac, ""), mac: mac, dir: t.TempDir()}
	c.script = filepath.Join(c.dir, "script")
	c.events = filepath.Join(c.dir, "events")
	if err := os.WriteFile(c.script, []byte(strings.ReplaceAll(clientScript, "LOG", c.events)), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// lastEvent returns the last event the client's script recorded.
func (c *dhcpClient) lastEvent(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(c.events)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	return lines[len(lines)-1]
}

// hasAddr reports whether the client's eth0 has ip.
func (c *dhcpClient) hasAddr(t *testing.T, ip string) bool {
	t.Helper()
	out, err := c.host.Run(t.Context(), "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, " "+ip+"/24 ")
}

// TestDHCPClients runs the DHCP clients of ordinary Linux hosts, ISC
// dhclient and busybox udhcpc, against the appliance for MACs the site
// does not know (its subnet allows discovery), and checks the lease table
// through the API after each step: a lease from the pool, held; renewed
// (dhclient restarted on its lease file: INIT-REBOOT, a broadcast REQUEST
// naming the address; udhcpc on SIGUSR1: RENEWING, a unicast REQUEST
// from the address) with its expiry moved forward; released.
func TestDHCPClients(t *testing.T) {
	lab.Require(t, "dhclient", "udhcpc")
	b := newBootNet(t, bootNetConfig{})
	b.apply(bootSiteYAML(bootSite{}))
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()

	dh := testDHClient(ctx, t, b)
	ud := testUDHCPC(ctx, t, b)
	if dh.IP == ud.IP {
		t.Errorf("dhclient and udhcpc both got %s", dh.IP)
	}
}

// testDHClient runs dhclient through its lease's life and returns the
// released lease.
func testDHClient(ctx context.Context, t *testing.T, b *bootNet) store.Lease {
	c := newDHCPClient(t, b, "dhclient", "02:18:00:00:00:01")
	conf := filepath.Join(c.dir, "dhclient.conf")
	if err := os.WriteFile(conf, []byte("send host-name \"dhclient-host\";\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"dhclient", "-4", "-v", "-cf", conf, "-lf", filepath.Join(c.dir, "leases"),
		"-pf", filepath.Join(c.dir, "pid"), "-sf", c.script, "eth0"}
	bound := regexp.MustCompile(`^bound to (\S+) `)

	// DORA: the first lease, held for the host.
	p := c.host.Start(t, args[0], append([]string{"-d"}, args[1:]...)...)
	first := waitClientLine(ctx, t, p, bound)
	l1 := waitActive(t, b, c.mac, "dhclient-host", nil)
	if !strings.Contains(first, "bound to "+l1.IP+" ") {
		t.Fatalf("dhclient %q, lease table %s", first, l1.IP)
	}
	checkConfigured(t, c, l1.IP, "BOUND")

	// Restarted on the same lease file, dhclient asks for its address
	// again (INIT-REBOOT) and gets it for longer.
	p.Kill()
	p = c.host.Start(t, args[0], append([]string{"-d"}, args[1:]...)...)
	again := waitClientLine(ctx, t, p, bound)
	l2 := waitActive(t, b, c.mac, "dhclient-host", func(l store.Lease) error {
		if !l.Expires.After(l1.Expires) {
			return fmt.Errorf("expires %v, not after %v", l.Expires, l1.Expires)
		}
		return nil
	})
	if l2.IP != l1.IP || !strings.Contains(again, "bound to "+l1.IP+" ") {
		t.Errorf("after INIT-REBOOT: dhclient %q, lease %s; want %s", again, l2.IP, l1.IP)
	}
	checkConfigured(t, c, l1.IP, "REBOOT")
	t.Logf("dhclient: %s renewed, expires %s -> %s", l2.IP, l1.Expires.Format(time.RFC3339Nano), l2.Expires.Format(time.RFC3339Nano))

	// dhclient -r stops the running client and releases the lease.
	out, err := c.host.Run(ctx, args[0], append([]string{"-r"}, args[1:]...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dhclient -r:\n%s", strings.TrimSpace(out))
	l3 := waitReleased(t, b, c.mac, l1.IP)
	if c.hasAddr(t, l1.IP) {
		t.Errorf("eth0 still has %s after dhclient -r", l1.IP)
	}
	return l3
}

// testUDHCPC runs udhcpc through its lease's life and returns the
// released lease.
func testUDHCPC(ctx context.Context, t *testing.T, b *bootNet) store.Lease {
	c := newDHCPClient(t, b, "udhcpc", "02:18:00:00:00:02")
	// -R: release the lease when stopped.
	p := c.host.Start(t, "udhcpc", "-f", "-R", "-i", "eth0", "-s", c.script, "-t", "10", "-T", "1",
		"-x", "hostname:udhcpc-host")
	obtained := regexp.MustCompile(`lease of (\S+) obtained`)

	first := waitClientLine(ctx, t, p, obtained)
	l1 := waitActive(t, b, c.mac, "udhcpc-host", nil)
	if !strings.Contains(first, "lease of "+l1.IP+" ") {
		t.Fatalf("udhcpc %q, lease table %s", first, l1.IP)
	}
	checkConfigured(t, c, l1.IP, "bound")

	// SIGUSR1: renew now, by unicast from the address (RENEWING).
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	again := waitClientLine(ctx, t, p, obtained)
	l2 := waitActive(t, b, c.mac, "udhcpc-host", func(l store.Lease) error {
		if !l.Expires.After(l1.Expires) {
			return fmt.Errorf("expires %v, not after %v", l.Expires, l1.Expires)
		}
		return nil
	})
	if l2.IP != l1.IP || !strings.Contains(again, "lease of "+l1.IP+" ") {
		t.Errorf("after renew: udhcpc %q, lease %s; want %s", again, l2.IP, l1.IP)
	}
	checkConfigured(t, c, l1.IP, "renew")
	t.Logf("udhcpc: %s renewed, expires %s -> %s", l2.IP, l1.Expires.Format(time.RFC3339Nano), l2.Expires.Format(time.RFC3339Nano))

	// SIGTERM under -R: release, then exit.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Errorf("udhcpc after SIGTERM: %v", err)
	}
	return waitReleased(t, b, c.mac, l1.IP)
}

// waitClientLine waits for a DHCP client's line matching re.
func waitClientLine(ctx context.Context, t *testing.T, p *lab.Process, re *regexp.Regexp) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	line, err := p.WaitForLine(c, re)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", p.Name, line)
	return line
}

// waitActive waits for mac's active pool lease, for an unknown machine
// named hostname, that also passes check (nil: any).
func waitActive(t *testing.T, b *bootNet, mac, hostname string, check func(store.Lease) error) store.Lease {
	t.Helper()
	return b.waitLease(mac, func(l store.Lease) error {
		switch {
		case l.State != store.LeaseActive:
			return fmt.Errorf("state %s, want active", l.State)
		case !inPool(l.IP):
			return fmt.Errorf("%s is not in the pool 198.18.0.100-150", l.IP)
		case l.MachineID != "" || l.Subnet != "lab" || l.Hostname != hostname:
			return fmt.Errorf("machine %q subnet %q hostname %q, want none, lab, %s", l.MachineID, l.Subnet, l.Hostname, hostname)
		case !l.Expires.After(time.Now().Add(50 * time.Minute)):
			return fmt.Errorf("expires %v, want about an hour from now", l.Expires)
		}
		if check != nil {
			return check(l)
		}
		return nil
	})
}

// waitReleased waits for mac's lease on ip to be released.
func waitReleased(t *testing.T, b *bootNet, mac, ip string) store.Lease {
	t.Helper()
	l := b.waitLease(mac, func(l store.Lease) error {
		if l.IP != ip || l.State != store.LeaseReleased {
			return fmt.Errorf("state %s, want %s released", l.State, ip)
		}
		return nil
	})
	t.Logf("%s: %s released", mac, ip)
	return l
}

func inPool(ip string) bool {
	var d int
	n, _ := fmt.Sscanf(ip, "198.18.0.%d", &d)
	return n == 1 && d >= 100 && d <= 150 && ip == fmt.Sprintf("198.18.0.%d", d)
}

// checkConfigured waits for the client's script to have run for event
// with the address and the subnet's options, and configured the address.
// (Clients log the lease before they run their script.)
func checkConfigured(t *testing.T, c *dhcpClient, ip, event string) {
	t.Helper()
	want := fmt.Sprintf("%s %s 255.255.255.0 %s 3600 %s", event, ip, bootServerIP, bootServerIP)
	err := labsite.Poll(t.Context(), 10*time.Second, func() error {
		if got := c.lastEvent(t); got != want {
			return fmt.Errorf("client script got %q, want %q", got, want)
		}
		if !c.hasAddr(t, ip) {
			return fmt.Errorf("eth0 does not have %s/24", ip)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestTFTPFromNamespace fetches iPXE binaries from the appliance's TFTP
// server with tftp-hpa from another host on the boot network, byte for
// byte, and checks that names reaching outside the artifact directory
// and writes are refused with an access violation and no data.
func TestTFTPFromNamespace(t *testing.T) {
	lab.Require(t, "tftp")
	b := newBootNet(t, bootNetConfig{})
	host := b.attachHost("tftpc", "02:18:00:00:00:20", "198.18.0.20/24")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tftp := func(cmd ...string) string {
		t.Helper()
		out, err := host.Run(ctx, "tftp", append([]string{"-m", "binary", bootServerIP, "-c"}, cmd...)...)
		if err != nil && !strings.Contains(out, "Error code") {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	for _, f := range []struct{ name, image string }{
		{"undionly.kpxe", b.imgs.UndionlyKPXE},
		{"/snponly.efi", b.imgs.SnponlyEFI}, // firmware often asks with a slash
	} {
		local := filepath.Join(dir, filepath.Base(f.image))
		if out := tftp("get", f.name, local); out != "" {
			t.Errorf("tftp get %s: %s", f.name, out)
		}
		got, err := os.ReadFile(local)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(f.image)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("tftp get %s: %d bytes, not the %d of %s", f.name, len(got), len(want), f.image)
		}
	}

	// images/build.sh is a real file just outside the artifact directory.
	for _, name := range []string{"../build.sh", "../out/undionly.kpxe", "a/../undionly.kpxe", "../../../../../../etc/passwd"} {
		local := filepath.Join(dir, "refused")
		out := tftp("get", name, local)
		if !strings.Contains(out, "Error code 2") {
			t.Errorf("tftp get %s: %q, want an access violation (error 2)", name, out)
		}
		if raw, err := os.ReadFile(local); err == nil && len(raw) > 0 {
			t.Errorf("tftp get %s: got %d bytes", name, len(raw))
		}
		os.Remove(local)
	}
	if out := tftp("put", b.imgs.UndionlyKPXE, "uploaded.kpxe"); !strings.Contains(out, "Error code 2") {
		t.Errorf("tftp put: %q, want an access violation (error 2)", out)
	}
	if _, err := os.Stat(filepath.Join(b.imgs.Dir, "uploaded.kpxe")); err == nil {
		t.Errorf("tftp put created %s", filepath.Join(b.imgs.Dir, "uploaded.kpxe"))
	}

	b.waitLog(5*time.Second,
		`msg="tftp: sent" .*client=198\.18\.0\.20:\d+ file=undionly\.kpxe `,
		`msg="tftp: read refused" .*client=198\.18\.0\.20:\d+ file=\.\./build\.sh `,
		`msg="tftp: write refused" .*file=uploaded\.kpxe `,
	)
	if sent := b.logLines(regexp.MustCompile(`msg="tftp: sent" .*file=\S*(build\.sh|passwd|\.\.)`)); len(sent) > 0 {
		t.Errorf("applianced sent a refused name: %q", sent)
	}
	for _, l := range b.logLines(regexp.MustCompile(`component=tftp`)) {
		t.Logf("applianced: %s", l)
	}
}
