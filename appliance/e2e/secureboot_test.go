package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// sbFirmware is what a Secure Boot VM needs from the host.
var sbFirmware = []string{"qemu-system-x86_64", lab.OVMFCodeSecureBoot, lab.OVMFVarsMS}

// TestSecureBootRefusesIPXE shows why iPXE is not offered to a machine
// with Secure Boot: OVMF with Secure Boot enforced and Microsoft's keys
// enrolled fetches the ipxe.efi the appliance names for an ordinary UEFI
// client, whole, over TFTP, and refuses to run it ("Access Denied": the
// binary carries no signature its db trusts), so it never gets to iPXE.
func TestSecureBootRefusesIPXE(t *testing.T) {
	lab.Require(t, sbFirmware...)
	b := newBootNet(t, bootNetConfig{})
	// vm1 is known, but not marked secure_boot: it gets iPXE as today.
	b.apply(vm1Site(vm1IP))

	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	vm := b.startVM(lab.VMConfig{MAC: vm1MAC, Firmware: lab.SecureBoot, DisableNICROM: true})
	for _, step := range []string{
		`Start PXE over IPv4`,
		`Station IP address is ` + regexp.QuoteMeta(vm1IP),
		`BdsDxe: failed to load Boot\d+ "UEFI PXEv4 .*: Access Denied`,
	} {
		line, err := vm.WaitSerial(ctx, regexp.MustCompile(step))
		if err != nil {
			t.Fatalf("serial console: waiting for %q: %v", step, err)
		}
		t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), printable(line))
	}
	vm.Kill()

	// What the firmware refused is the whole of ipxe.efi, not a failed
	// download.
	assertSentWhole(t, b, b.imgs.IPXEEFI, vm1IP)
	// iPXE never ran: it would have asked for its script.
	if got := b.logLines(regexp.MustCompile(`ipxe script.*mac=` + regexp.QuoteMeta(vm1MAC))); len(got) > 0 {
		t.Errorf("iPXE ran under Secure Boot and asked for its script: %q", got)
	}
}

// sbSite is vm1Site with vm1 marked as a Secure Boot machine.
func sbSite(ip string) string {
	return strings.Replace(vm1Site(ip), "hostname: vm1\n", "hostname: vm1\nsecure_boot: true\n", 1)
}

// TestSecureBootNetboot boots a machine marked secure_boot under OVMF
// with Secure Boot enforced: the appliance names Debian's signed shim as
// its boot file, the firmware fetches it over TFTP and runs it (signed by
// Microsoft's UEFI CA), shim fetches the signed GRUB beside it, GRUB reads
// grub/grub.cfg and then the machine's own configuration, which the
// appliance makes, and boots the signed kernel with the installer image's
// initrd and command line; the kernel reports Secure Boot and lockdown.
func TestSecureBootNetboot(t *testing.T) {
	lab.Require(t, sbFirmware...)
	b := newBootNet(t, bootNetConfig{})
	b.apply(sbSite(vm1IP))

	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	vm := b.startVM(lab.VMConfig{MAC: vm1MAC, Firmware: lab.SecureBoot, DisableNICROM: true})
	line := b.waitBoot(ctx, vm,
		`Start PXE over IPv4`,
		`NBP filename is shimx64\.efi`,
		`Welcome to GRUB`,
		// GRUB wraps its console at 80 columns.
		`Outpost: install: machine vm1 is provisioning`,
		`Linux version`,
		`Kernel is locked down from EFI Secure Boot`,
		`secureboot: Secure boot enabled`,
	)
	assertMarker(t, line, "vm1", vm1MAC)
	assertLease(t, b, vm1MAC, vm1IP, "vm1")

	for _, f := range []string{"shimx64.efi", "grubx64.efi", "vmlinuz", "test-initrd.img"} {
		fi, err := os.Stat(filepath.Join(b.imgs.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		sent := b.logLines(regexp.MustCompile(`msg="tftp: sent" .*client=` + regexp.QuoteMeta(vm1IP) +
			`:\d+ file=/?` + regexp.QuoteMeta(f) + ` bytes=` + strconv.FormatInt(fi.Size(), 10) + ` `))
		if len(sent) == 0 {
			t.Errorf("applianced logged no complete TFTP transfer of %s (%d bytes) to %s", f, fi.Size(), vm1IP)
		}
	}
	b.waitLog(5*time.Second, `msg="grub config" .*mac=`+regexp.QuoteMeta(vm1MAC)+`.*variant=install machine=vm1`)
	if bad := b.logLines(regexp.MustCompile(`msg="tftp: sent" .*file=\S*(ipxe\.efi|undionly\.kpxe|snponly\.efi)`)); len(bad) > 0 {
		t.Errorf("a Secure Boot machine was sent iPXE: %q", bad)
	}
}
