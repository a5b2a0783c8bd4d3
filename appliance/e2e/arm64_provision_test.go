package e2e

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// arm64Peers are what an arm64 VM needs besides what the site does.
var arm64Peers = []string{"qemu-system-aarch64", lab.AAVMFCode, lab.AAVMFVars}

// TestArm64Provision provisions an arm64 machine end to end under TCG:
// QEMU's virt machine with AAVMF network-boots with EDK2's own PXE client
// (client architecture 11), which the DHCP server gives Debian's signed
// arm64 GRUB network image; GRUB reads grub/arm64-efi/<MAC>.cfg, by which
// the appliance knows the machine is arm64 and boots it the arm64 kernel
// and installer; the agent (built for arm64) writes the arm64 test OS and
// reboots; the machine, now provisioned, is sent back to its firmware,
// which boots the disk through arm64 GRUB; the test OS prints the
// hostname the metadata service gave it.
func TestArm64Provision(t *testing.T) {
	lab.Require(t, arm64Peers...)
	bin := applianced(t)
	imgs := lab.BuildImages(t)
	s := labsite.Start(t, labsite.Config{Applianced: bin, Images: imgs})
	s.Put(t, labsite.Provisioning(t, imgs)...)
	s.Put(t, labsite.ProvisioningARM64(t, imgs)...)
	const mac = "52:54:00:a6:40:01"
	wf := labsite.Workflow("wf1", "vm1", labsite.TestOSARM64Name, "testos-vm1")
	wf.Template = labsite.ARM64TemplateName
	s.Put(t, labsite.MachineARM64("vm1", mac), wf)

	vm := s.StartVM(t, lab.VMConfig{MAC: mac, Arch: lab.Arm64, Firmware: lab.UEFI,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	ctx := workflowContext(t, s, "wf1", 20*time.Minute)
	waitSerialSteps(ctx, t, vm,
		regexp.MustCompile(`Outpost: install: machine vm1 is provisioning`),
		regexp.MustCompile(`outpost-installer: starting on \S+-arm64`),
		regexp.MustCompile(`outpost-installer: starting agent`),
		regexp.MustCompile(`Outpost: provisioned: machine vm1`), // after the reboot
		regexp.MustCompile(`OUTPOST-TESTOS-BOOTED from disk`),
	)
	checkTestOSProvisioned(ctx, t, s, vm, "arch=arm64")
}

// checkTestOSProvisioned waits for the test OS of machine vm1 (workflow
// wf1, hostname testos-vm1) to print its metadata, logs the time since the
// VM started as the bench row's label would, and checks that the machine
// is provisioned and its workflow succeeded.
func checkTestOSProvisioned(ctx context.Context, t *testing.T, s *labsite.Site, vm *lab.VM, label string) {
	t.Helper()
	line, err := vm.WaitSerial(ctx, testOSLine)
	if err != nil {
		t.Fatalf("the test OS did not print its metadata: %v", context.Cause(ctx))
	}
	total := time.Since(vm.Start).Seconds()
	t.Logf("%6.1fs serial: %s", total, printable(line))
	if mm := testOSLine.FindStringSubmatch(line); mm[1] != "testos-vm1" || mm[2] != "vm1" {
		t.Errorf("the test OS says hostname=%s instance-id=%s, want testos-vm1 and vm1", mm[1], mm[2])
	}
	t.Logf("provision %s total=%.1fs (VM start to the test OS's metadata line)", label, total)

	got, err := s.Machine(ctx, "vm1")
	if err != nil || got.State != store.StateProvisioned {
		t.Errorf("machine vm1: %+v (%v), want provisioned", got, err)
	}
	w, err := s.Workflow(ctx, "wf1")
	if err != nil || w.Status() != "succeeded" {
		t.Errorf("workflow wf1: %v (%v), want succeeded", w.Status(), err)
	}
}

// workflowContext is the context of a provision test: it ends after
// timeout, at the test's end, or as soon as workflow id fails (its cause
// says why), so a test waiting on a serial console fails at once.
func workflowContext(t *testing.T, s *labsite.Site, id string, timeout time.Duration) context.Context {
	ctx, cancelTimeout := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancelTimeout)
	ctx, cancel := context.WithCancelCause(ctx)
	t.Cleanup(func() { cancel(nil) })
	go failOnWorkflowFailure(ctx, cancel, t, s, id)
	return ctx
}

// waitSerialSteps waits for each of steps on vm's serial console in turn,
// logging the line and when it came.
func waitSerialSteps(ctx context.Context, t *testing.T, vm *lab.VM, steps ...*regexp.Regexp) {
	t.Helper()
	for _, step := range steps {
		line, err := vm.WaitSerial(ctx, step)
		if err != nil {
			t.Fatalf("waiting for %q: %v (cause %v; serial console in %s)", step, err, context.Cause(ctx), vm.Serial)
		}
		t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), printable(line))
	}
}
