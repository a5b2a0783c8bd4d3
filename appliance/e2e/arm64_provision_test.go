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

// TestArm64Provision provisions an arm64 machine end to end under TCG, by
// an order: the appliance powers the VM on through its BMC (ipmi_sim,
// which starts qemu-system-aarch64: QEMU's virt machine with AAVMF); EDK2's
// own PXE client (client architecture 11) gets Debian's signed arm64 GRUB
// network image, which reads grub/arm64-efi/<MAC>.cfg, by which the
// appliance knows the machine is arm64 and boots it the arm64 kernel and
// installer; the agent (built for arm64) writes the arm64 test OS and
// reboots; the machine, now provisioned, is sent back to its disk through
// GRUB; the test OS prints the hostname the metadata service gave it.
func TestArm64Provision(t *testing.T) {
	lab.Require(t, arm64Peers...)
	imgs := lab.BuildImages(t)
	s := startBMCSite(t, labsite.Config{Applianced: applianced(t), Images: imgs})
	s.Put(t, labsite.ProvisioningARM64(t, imgs)...)
	const mac = "52:54:00:a6:40:01"
	vm := startBMCVMConfig(t, s, lab.VMConfig{MAC: mac, Arch: lab.Arm64, Firmware: lab.UEFI,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	m := labsite.MachineARM64("vm1", mac)
	m.BMC = &store.BMC{Address: vm.BMC.Addr, Driver: "ipmi", Username: vm.BMC.Username, Password: vm.BMC.Password}
	s.Put(t, m)
	if vm.running() {
		t.Fatal("the VM runs before anything powered it on")
	}

	ctx := workflowContext(t, s, "prov1", 20*time.Minute, nil)
	start := time.Now()
	s.Put(t, &store.Order{ID: "prov1", Action: store.OrderProvision, MachineID: "vm1",
		Template: labsite.ARM64TemplateName, Image: labsite.TestOSARM64Name, Values: map[string]string{"hostname": "testos-vm1"}})
	var line string
	off := 0
	for _, step := range []*regexp.Regexp{
		regexp.MustCompile(`NBP filename is grubaa64\.efi`),
		regexp.MustCompile(`Outpost: install: machine vm1 is provisioning`),
		regexp.MustCompile(`outpost-installer: starting on \S+-arm64`),
		regexp.MustCompile(`outpost-installer: starting agent`),
		regexp.MustCompile(`Outpost: provisioned: machine vm1`), // after the reboot
		regexp.MustCompile(`OUTPOST-TESTOS-BOOTED from disk`),
		testOSLine,
	} {
		var err error
		if line, off, err = vm.waitSerial(ctx, step, off); err != nil {
			t.Fatalf("waiting for %q: %v (cause %v; serial console in %s)", step, err, context.Cause(ctx), vm.Serial)
		}
		t.Logf("%6.1fs serial: %s", time.Since(start).Seconds(), printable(line))
	}
	t.Logf("provision arch=arm64 total=%.1fs (order to the test OS's metadata line)", time.Since(start).Seconds())
	if o := waitOrder(ctx, t, s, "prov1"); o.State != store.OrderSucceeded {
		t.Fatalf("order prov1: %s %q", o.State, o.Reason)
	}
	checkProvisioned(ctx, t, s, line, "prov1")
	if got, err := s.Machine(ctx, "vm1"); err != nil || got.Power != "on" {
		t.Errorf("machine vm1's power %q (%v), want on", got.Power, err)
	}
}

// checkTestOSProvisioned waits for the test OS of machine vm1 (workflow
// wf1, hostname testos-vm1) to print its metadata, logs the time since the
// VM started as the bench row's label would, and checks it
// (checkProvisioned).
func checkTestOSProvisioned(ctx context.Context, t *testing.T, s *labsite.Site, vm *lab.VM, label string) {
	t.Helper()
	line, err := vm.WaitSerial(ctx, testOSLine)
	if err != nil {
		t.Fatalf("the test OS did not print its metadata: %v", context.Cause(ctx))
	}
	total := time.Since(vm.Start).Seconds()
	t.Logf("%6.1fs serial: %s", total, printable(line))
	checkProvisioned(ctx, t, s, line, "wf1")
}

// checkProvisioned checks that the test OS's metadata line is machine
// vm1's (hostname testos-vm1), that vm1 is provisioned and that its
// workflow succeeded.
func checkProvisioned(ctx context.Context, t *testing.T, s *labsite.Site, line, workflow string) {
	t.Helper()
	if mm := testOSLine.FindStringSubmatch(line); mm == nil || mm[1] != "testos-vm1" || mm[2] != "vm1" {
		t.Errorf("the test OS says %q, want hostname=testos-vm1 instance-id=vm1", line)
	}
	got, err := s.Machine(ctx, "vm1")
	if err != nil || got.State != store.StateProvisioned {
		t.Errorf("machine vm1: %+v (%v), want provisioned", got, err)
	}
	w, err := s.Workflow(ctx, workflow)
	if err != nil || w.Status() != "succeeded" {
		t.Errorf("workflow %s: %v (%v), want succeeded", workflow, w.Status(), err)
	}
}

// workflowContext is the context of a provision test: it ends after
// timeout, at the test's end, or as soon as workflow id fails (its cause
// says why), so a test waiting on a serial console fails at once; and,
// for a vm that is not nil, as soon as its serial console says its boot
// failed (watchSerial).
func workflowContext(t *testing.T, s *labsite.Site, id string, timeout time.Duration, vm *lab.VM) context.Context {
	ctx, cancelTimeout := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancelTimeout)
	ctx, cancel := context.WithCancelCause(ctx)
	t.Cleanup(func() { cancel(nil) })
	go failOnWorkflowFailure(ctx, cancel, t, s, id)
	if vm != nil {
		go watchSerial(ctx, vm.Serial, cancel)
	}
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
