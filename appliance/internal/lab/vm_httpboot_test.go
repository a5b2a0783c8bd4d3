package lab

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// An HTTPBoot VM's firmware has its PXE client and IPv6 switched off
// through fw_cfg, and its NIC no option ROM (iPXE's would boot instead of
// EDK2's HTTP client); other VMs have neither.
func TestQEMUArgsHTTPBoot(t *testing.T) {
	Require(t, OVMFCode, OVMFVars)
	knobs := []string{
		"name=opt/org.tianocore/IPv4PXESupport,string=no",
		"name=opt/org.tianocore/IPv6PXESupport,string=no",
		"name=opt/org.tianocore/IPv6Support,string=no",
	}
	cfg := VMConfig{Tap: "tap0", MAC: "52:54:00:00:00:01", Firmware: UEFI, HTTPBoot: true}
	args := vmArgs(t, &cfg)
	for _, k := range knobs {
		if i := slices.Index(args, k); i < 1 || args[i-1] != "-fw_cfg" {
			t.Errorf("no -fw_cfg %s in %q", k, args)
		}
	}
	if !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "virtio-net-pci,") && strings.HasSuffix(a, ",romfile=")
	}) {
		t.Errorf("the NIC has an option ROM: %q", args)
	}

	plain := vmArgs(t, &VMConfig{Tap: "tap0", MAC: "52:54:00:00:00:02", Firmware: UEFI})
	if slices.Contains(plain, "-fw_cfg") {
		t.Errorf("a VM without HTTPBoot has fw_cfg settings: %q", plain)
	}
}

// HTTPBoot under BIOS is refused, naming why: SeaBIOS has no HTTP boot.
func TestVMArgsHTTPBootNeedsUEFI(t *testing.T) {
	ft := &fatalT{T: t}
	func() {
		defer func() { recover() }()
		vmArgs(ft, &VMConfig{Tap: "tap0", HTTPBoot: true})
	}()
	if !strings.Contains(ft.msg, "HTTPBoot needs UEFI firmware, not BIOS") {
		t.Errorf("HTTPBoot under BIOS: %q, want a refusal naming UEFI", ft.msg)
	}
}

// fatalT records Fatalf's message and stops its goroutine with a panic
// (recovered by the caller), so that a test can see what was refused.
type fatalT struct {
	*testing.T
	msg string
}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f.msg)
}
