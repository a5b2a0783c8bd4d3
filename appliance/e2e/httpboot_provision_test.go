package e2e

import (
	"regexp"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
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
	ctx := workflowContext(t, b.site, "wf1", 12*time.Minute, vm)
	ipxeURL := labsite.BootURL + "/artifacts/ipxe.efi"
	waitSerialSteps(ctx, t, vm,
		regexp.MustCompile(`Start HTTP Boot over IPv4`),
		regexp.MustCompile(regexp.QuoteMeta(ipxeURL)),
		regexp.MustCompile(`iPXE initialising devices`),
		regexp.MustCompile(`outpost-installer: starting agent`),
		regexp.MustCompile(`OUTPOST-TESTOS-BOOTED from disk`),
	)
	checkTestOSProvisioned(ctx, t, b.site, vm, "boot=http")

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
