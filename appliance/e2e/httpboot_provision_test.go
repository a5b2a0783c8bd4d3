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

// TestHTTPBootProvision provisions a UEFI machine that boots by UEFI HTTP
// boot, not PXE: OVMF with its PXE client switched off (lab.VMConfig
// HTTPBoot) asks DHCP as an HTTPClient (client architecture 16), is
// answered with the class HTTPClient and the http:// URL of ipxe.efi,
// downloads it over HTTP and runs it; iPXE boots the installer, which
// writes the test OS and kexecs into it, and the test OS prints the
// hostname the metadata service gave it. The appliance logged the
// HTTPClient reply and no TFTP transfer at all: nothing came by PXE.
func TestHTTPBootProvision(t *testing.T) {
	lab.Require(t, "qemu-system-x86_64", lab.OVMFCode, lab.OVMFVars)
	b := newBootNet(t, bootNetConfig{})
	b.site.Put(t, labsite.Provisioning(t, b.imgs)...)
	const mac = "52:54:00:4b:00:01"
	b.site.Put(t, labsite.Machine("vm1", mac), labsite.Workflow("wf1", "vm1", labsite.TestOSName, "testos-vm1"))

	vm := b.site.StartVM(t, lab.VMConfig{MAC: mac, Firmware: lab.UEFI, HTTPBoot: true,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	ctx, cancelTimeout := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go failOnWorkflowFailure(ctx, cancel, t, b.site, "wf1")
	go watchSerial(ctx, vm.Serial, cancel)

	ipxeURL := labsite.BootURL + "/artifacts/ipxe.efi"
	waitSteps(ctx, t, vm,
		regexp.MustCompile(`Start HTTP Boot over IPv4`),
		regexp.MustCompile(regexp.QuoteMeta(ipxeURL)),
		regexp.MustCompile(`iPXE initialising devices`),
		regexp.MustCompile(`outpost-installer: starting agent`),
		regexp.MustCompile(`OUTPOST-TESTOS-BOOTED from disk`),
	)
	line, err := vm.WaitSerial(ctx, testOSLine)
	if err != nil {
		t.Fatalf("the test OS did not print its metadata: %v", context.Cause(ctx))
	}
	t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), printable(line))
	if m := testOSLine.FindStringSubmatch(line); m[1] != "testos-vm1" || m[2] != "vm1" {
		t.Errorf("the test OS says hostname=%s instance-id=%s, want testos-vm1 and vm1", m[1], m[2])
	}
	assertProvisioned(ctx, t, b.site, "vm1", "wf1")

	// The firmware's DHCP request was answered as an HTTP boot client's,
	// and it fetched ipxe.efi over HTTP; no TFTP request ever came.
	if got := b.logLines(regexp.MustCompile(`msg="dhcp: boot" .*mac=` + regexp.QuoteMeta(mac) +
		` .*kind=http file=` + regexp.QuoteMeta(ipxeURL) + ` class=HTTPClient`)); len(got) == 0 {
		t.Errorf("applianced logged no HTTPClient boot reply to %s", mac)
	}
	if got := b.logLines(regexp.MustCompile(`msg=artifact .*name=ipxe\.efi .*method=GET`)); len(got) == 0 {
		t.Error("applianced logged no HTTP download of ipxe.efi")
	}
	if got := b.logLines(regexp.MustCompile(`msg="dhcp: boot" .*kind=pxe`)); len(got) > 0 {
		t.Errorf("applianced answered a PXE client: %q", got)
	}
	if got := b.logLines(regexp.MustCompile(`msg="tftp: `)); len(got) > 0 {
		t.Errorf("applianced served TFTP to an HTTP boot machine: %q", got)
	}
}

// assertProvisioned fails t unless machine is provisioned and workflow
// wf has succeeded.
func assertProvisioned(ctx context.Context, t *testing.T, s *labsite.Site, machine, wf string) {
	t.Helper()
	m, err := s.Machine(ctx, machine)
	if err != nil || m.State != store.StateProvisioned {
		t.Errorf("machine %s: %+v (%v), want provisioned", machine, m, err)
	}
	w, err := s.Workflow(ctx, wf)
	switch {
	case err != nil:
		t.Errorf("workflow %s: %v", wf, err)
	case w.Status() != "succeeded":
		t.Errorf("workflow %s: %s, want succeeded", wf, w.Status())
	}
}

// waitSteps waits for lines of vm's serial console that match steps, in
// order, logging each, and fails t at the first that does not come
// (naming ctx's cause: a failed workflow, a failed boot).
func waitSteps(ctx context.Context, t *testing.T, vm *lab.VM, steps ...*regexp.Regexp) {
	t.Helper()
	for _, step := range steps {
		line, err := vm.WaitSerial(ctx, step)
		if err != nil {
			t.Fatalf("waiting for %q: %v (cause %v; serial console in %s)", step, err, context.Cause(ctx), vm.Serial)
		}
		t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), printable(line))
	}
}
