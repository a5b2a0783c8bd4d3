package e2e

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
)

// testOSSecureBoot is the test OS's line on the firmware's Secure Boot
// state, read from the SecureBoot EFI variable.
var testOSSecureBoot = regexp.MustCompile(`OUTPOST-TESTOS secureboot=(\S+)`)

// TestSecureBootProvision provisions a Secure Boot machine end to end:
// OVMF with Secure Boot enforced and Microsoft's keys network-boots
// Debian's signed shim, GRUB and kernel with the installer's initrd; the
// agent (in a kernel locked down by Secure Boot) writes the EFI test OS
// and reboots; the machine, now provisioned, is told by its GRUB
// configuration to go back to the firmware, which boots the disk through
// shim and GRUB; the test OS says Secure Boot is enabled and prints the
// hostname the metadata service gave it.
func TestSecureBootProvision(t *testing.T) {
	lab.Require(t, sbFirmware...)
	bin := applianced(t)
	imgs := lab.BuildImages(t)
	s := labsite.Start(t, labsite.Config{Applianced: bin, Images: imgs})
	prov := labsite.Provisioning(t, imgs)
	s.Put(t, prov[0], prov[1], labsite.TestOSEFIImage(t, imgs), labsite.SecureBootTemplate())
	const mac = "52:54:00:5b:00:01"
	m := labsite.Machine("vm1", mac)
	m.SecureBoot = true
	wf := labsite.Workflow("wf1", "vm1", labsite.TestOSEFIName, "testos-vm1")
	wf.Template = labsite.SecureBootTemplateName
	s.Put(t, m, wf)

	vm := s.StartVM(t, lab.VMConfig{MAC: mac, Firmware: lab.SecureBoot, DisableNICROM: true,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	ctx := workflowContext(t, s, "wf1", 12*time.Minute, nil)
	waitSerialSteps(ctx, t, vm,
		regexp.MustCompile(`NBP filename is shimx64\.efi`),
		regexp.MustCompile(`Outpost: install: machine vm1 is provisioning`),
		regexp.MustCompile(`secureboot: Secure boot enabled`),
		regexp.MustCompile(`outpost-installer: starting agent`),
		regexp.MustCompile(`NBP filename is shimx64\.efi`), // after the reboot
		regexp.MustCompile(`Outpost: provisioned: machine vm1`),
		regexp.MustCompile(`OUTPOST-TESTOS-BOOTED from disk`),
	)
	line, err := vm.WaitSerial(ctx, testOSSecureBoot)
	if err != nil {
		t.Fatalf("the test OS did not print its Secure Boot state: %v", context.Cause(ctx))
	}
	t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), printable(line))
	if got := testOSSecureBoot.FindStringSubmatch(line)[1]; got != "enabled" {
		t.Errorf("the installed test OS says secureboot=%s, want enabled", got)
	}
	checkTestOSProvisioned(ctx, t, s, vm, "boot=secureboot")
}
