package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// vm1 is the machine the netboot tests boot.
const (
	vm1MAC = "52:54:00:12:34:56"
	vm1IP  = "198.18.0.10"
)

// bootTimeout bounds one VM's network boot under software emulation
// (QEMU -accel tcg): 10-45 s when all goes well.
const bootTimeout = 180 * time.Second

// vm1Site is a site whose machine vm1 is being provisioned, so that its
// iPXE script boots the installer; ip "" reserves it no address.
func vm1Site(ip string) string {
	return bootSiteYAML(bootSite{Machines: []bootMachine{{ID: "vm1", MAC: vm1MAC, IP: ip, State: store.StateProvisioning}}})
}

// TestNetbootBIOS boots a BIOS machine from the appliance alone: SeaBIOS
// runs the NIC's iPXE ROM, which gets its reserved address and the URL of
// its script from the appliance's DHCP server, fetches the script, and
// the kernel and initrd the script names, over HTTP from the appliance,
// and boots them to the test initrd's OUTPOST-BOOT-OK line.
func TestNetbootBIOS(t *testing.T) {
	lab.Require(t, "qemu-system-x86_64")
	b := newBootNet(t, bootNetConfig{})
	b.apply(vm1Site(vm1IP))

	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	vm := b.startVM(lab.VMConfig{MAC: vm1MAC, Firmware: lab.BIOS})
	steps := append([]string{`iPXE initialising devices`}, installerSteps(vm1MAC)...)
	line := b.waitBoot(ctx, vm, steps...)
	assertMarker(t, line, "vm1", vm1MAC)
	assertLease(t, b, vm1MAC, vm1IP, "vm1")
	assertBootLogs(t, b, vm1MAC, vm1IP, "vm1")
}

// TestNetbootUEFI boots a UEFI machine whose NIC has no option ROM, so
// that EDK2's own PXE client does the first step: it DHCPs as client
// architecture 7, gets ipxe.efi named as its boot file and fetches it
// over TFTP from the appliance; the iPXE it starts DHCPs again, now as
// iPXE, gets the URL of its script and boots the installer over HTTP.
func TestNetbootUEFI(t *testing.T) {
	lab.Require(t, "qemu-system-x86_64", lab.OVMFCode, lab.OVMFVars)
	b := newBootNet(t, bootNetConfig{})
	b.apply(vm1Site(vm1IP))

	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	vm := b.startVM(lab.VMConfig{MAC: vm1MAC, Firmware: lab.UEFI, DisableNICROM: true, MemoryMB: 1024})
	steps := append([]string{
		`Start PXE over IPv4`,
		`Station IP address is ` + regexp.QuoteMeta(vm1IP),
		`iPXE initialising devices`,
	}, installerSteps(vm1MAC)...)
	line := b.waitBoot(ctx, vm, steps...)
	assertMarker(t, line, "vm1", vm1MAC)
	assertLease(t, b, vm1MAC, vm1IP, "vm1")
	assertBootLogs(t, b, vm1MAC, vm1IP, "vm1")

	// The firmware fetched the EFI iPXE binary, whole, over TFTP: the
	// boot file was chosen by architecture.
	assertSentWhole(t, b, b.imgs.IPXEEFI, vm1IP)
	for _, l := range b.logLines(regexp.MustCompile(`msg="tftp: `)) {
		t.Logf("applianced: %s", l)
	}
	if bad := b.logLines(regexp.MustCompile(`msg="tftp: sent" .*file=\S*(undionly\.kpxe|snponly\.efi)`)); len(bad) > 0 {
		t.Errorf("a UEFI x86-64 client fetched another iPXE binary: %q", bad)
	}
}

// TestProxyDHCP boots machines on a network whose addresses come from
// another DHCP server (dnsmasq on another host, addresses only, no boot
// options) while applianced, with -dhcp-proxy, answers as a proxyDHCP
// server. BIOS: the NIC's iPXE takes its address from dnsmasq and the URL
// of its script from the appliance's offer. UEFI without a NIC ROM:
// EDK2's PXE client does the same for ipxe.efi over TFTP, then the iPXE
// it starts for its script. Both boot the installer, and the appliance's
// lease table stays empty.
func TestProxyDHCP(t *testing.T) {
	lab.Require(t, "qemu-system-x86_64", "dnsmasq")
	t.Run("BIOS", func(t *testing.T) {
		testProxyDHCP(t, lab.VMConfig{MAC: vm1MAC, Firmware: lab.BIOS})
	})
	t.Run("UEFI", func(t *testing.T) {
		lab.Require(t, lab.OVMFCode, lab.OVMFVars)
		testProxyDHCP(t, lab.VMConfig{MAC: vm1MAC, Firmware: lab.UEFI, DisableNICROM: true, MemoryMB: 1024})
	})
}

func testProxyDHCP(t *testing.T, vmc lab.VMConfig) {
	b := newBootNet(t, bootNetConfig{Proxy: true})
	b.apply(vm1Site(""))

	router := b.attachHost("dnsmasq", "02:18:00:00:00:02", "198.18.0.2/24")
	state := t.TempDir()
	dnsmasq := router.Start(t, "dnsmasq",
		"--no-daemon", "--conf-file=/dev/null", "--user=root",
		"--pid-file="+filepath.Join(state, "dnsmasq.pid"),
		"--port=0", "--interface=eth0", "--bind-interfaces",
		"--dhcp-range=198.18.0.200,198.18.0.220,255.255.255.0,10m", "--no-ping",
		"--dhcp-option=option:router,198.18.0.2",
		"--dhcp-leasefile="+filepath.Join(state, "leases"),
		"--log-dhcp", "--log-facility=-",
	)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	if _, err := dnsmasq.WaitForLine(ctx, regexp.MustCompile(`DHCP, IP range 198\.18\.0\.200`)); err != nil {
		t.Fatal(err)
	}

	var steps []string
	if vmc.Firmware == lab.UEFI {
		steps = append(steps, `Start PXE over IPv4`, `Station IP address is 198\.18\.0\.2\d\d`)
	}
	steps = append(steps,
		`iPXE initialising devices`,
		`net0: 198\.18\.0\.2\d\d/255\.255\.255\.0 gw 198\.18\.0\.2`, // dnsmasq's address
	)
	vm := b.startVM(vmc)
	line := b.waitBoot(ctx, vm, append(steps, installerSteps(vm1MAC)...)...)
	assertMarker(t, line, "vm1", vm1MAC)

	ack, err := dnsmasq.WaitForLine(ctx, regexp.MustCompile(`DHCPACK\(eth0\) 198\.18\.0\.2\d\d `+regexp.QuoteMeta(vm1MAC)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dnsmasq: %s", ack)
	addr := regexp.MustCompile(`198\.18\.0\.2\d\d`).FindString(ack)
	assertBootLogs(t, b, vm1MAC, addr, "vm1")
	if vmc.Firmware == lab.UEFI {
		b.waitLog(5*time.Second, `msg="tftp: sent" .*client=`+regexp.QuoteMeta(addr)+`:\d+ file=ipxe\.efi `)
	}
	// A proxyDHCP server hands out no addresses.
	ls, err := b.leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) > 0 {
		t.Errorf("the proxy's lease table has %d leases: %+v", len(ls), ls)
	}
}

// installerSteps match, in order, the serial lines of iPXE fetching the
// script for mac from the URL the appliance's DHCP server gave it, then
// the installer kernel and initrd the script names, and of the kernel
// starting. iPXE escapes the colons of the MAC in the URL it prints, and
// a download that takes seconds shows its progress between the URL and
// "ok"; a failed one ends with an error instead.
func installerSteps(mac string) []string {
	const fetched = `\.\.\. .*ok$`
	return []string{
		regexp.QuoteMeta("http://"+bootHTTPAddr+"/ipxe/") +
			strings.ReplaceAll(regexp.QuoteMeta(mac), ":", "(?::|%3A)") + `\.ipxe` + fetched,
		regexp.QuoteMeta("http://"+bootHTTPAddr+"/artifacts/vmlinuz") + fetched,
		regexp.QuoteMeta("http://"+bootHTTPAddr+"/artifacts/test-initrd.img") + fetched,
		`Linux version`,
	}
}

// assertMarker checks the test initrd's line: the kernel command line
// the appliance's script built names the machine and its MAC.
func assertMarker(t *testing.T, line, machine, mac string) {
	t.Helper()
	m := bootOK.FindStringSubmatch(line)
	if m == nil || m[1] != machine || m[2] != mac {
		t.Errorf("boot line %q, want outpost.machine=%s outpost.mac=%s", line, machine, mac)
	}
}

// assertLease checks, through the API, that mac holds an active lease on
// ip for machine.
func assertLease(t *testing.T, b *bootNet, mac, ip, machine string) {
	t.Helper()
	l := b.waitLease(mac, func(l store.Lease) error {
		if l.IP != ip || l.State != store.LeaseActive || l.MachineID != machine {
			return fmt.Errorf("ip %s state %s machine %q, want %s active %s", l.IP, l.State, l.MachineID, ip, machine)
		}
		if !l.Expires.After(time.Now()) {
			return fmt.Errorf("expired at %v", l.Expires)
		}
		return nil
	})
	t.Logf("lease: %s %s %s machine=%s expires=%s", l.IP, l.MAC, l.State, l.MachineID, l.Expires.Format(time.RFC3339))
}

// assertBootLogs checks that applianced logged serving the install
// script for mac, and both installer artifacts, to the machine at ip.
func assertBootLogs(t *testing.T, b *bootNet, mac, ip, machine string) {
	t.Helper()
	remote := ` remote=` + regexp.QuoteMeta(ip) + `:\d+ `
	for _, re := range []string{
		`msg="ipxe script" .*mac=` + regexp.QuoteMeta(mac) + remote + `variant=install machine=` + machine + ` `,
		`msg=artifact .*name=vmlinuz` + remote,
		`msg=artifact .*name=test-initrd\.img` + remote,
	} {
		lines := b.logLines(regexp.MustCompile(re))
		if len(lines) == 0 {
			t.Errorf("applianced logged no line matching %s", re)
			continue
		}
		t.Logf("applianced: %s", lines[0])
	}
}
