package e2e

import (
	"context"
	"os"
	"regexp"
	"strconv"
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

	fi, err := os.Stat(b.imgs.IPXEEFI)
	if err != nil {
		t.Fatal(err)
	}
	// What the firmware refused is the whole of ipxe.efi, not a failed
	// download.
	sent := b.logLines(regexp.MustCompile(`msg="tftp: sent" .*client=` + regexp.QuoteMeta(vm1IP) +
		`:\d+ file=ipxe\.efi bytes=` + strconv.FormatInt(fi.Size(), 10) + ` `))
	if len(sent) == 0 {
		t.Errorf("applianced logged no complete TFTP transfer of ipxe.efi (%d bytes) to %s", fi.Size(), vm1IP)
	}
	// iPXE never ran: it would have asked for its script.
	if got := b.logLines(regexp.MustCompile(`ipxe script.*mac=` + regexp.QuoteMeta(vm1MAC))); len(got) > 0 {
		t.Errorf("iPXE ran under Secure Boot and asked for its script: %q", got)
	}
}
