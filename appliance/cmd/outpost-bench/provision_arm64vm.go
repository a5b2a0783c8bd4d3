package main

import (
	"flag"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// provisionArch picks provision.e2e's rows by the machine's architecture.
var provisionArch = flag.String("provision-arch", "",
	"run only provision.e2e's rows of this architecture: x86_64, or arm64 (default both)")

// selected reports whether -provision-arch lets c's row run.
func (c provisionCase) selected() bool {
	switch *provisionArch {
	case "":
		return true
	case "x86_64":
		return c.arch == ""
	}
	return c.arch == *provisionArch
}

// arm64Case is provision.e2e's arm64 row: QEMU's virt machine with AAVMF
// network-boots through EDK2's PXE client and Debian's arm64 GRUB, the
// arm64 installer writes the arm64 test OS and reboots into it
// (labsite.ARM64Template), as TestArm64Provision does.
var arm64Case = provisionCase{label: "reboot", template: labsite.ARM64TemplateName, boot: "pxe", arch: lab.Arm64}

// archField is the row's arch field: " arch=arm64" for an arm64 machine,
// nothing for x86-64 (the rows before arm64 had none).
func (c provisionCase) archField() string {
	if c.arch == "" {
		return ""
	}
	return " arch=" + c.arch
}

// timeout is how long the VM gets to provision: arm64 under TCG on x86
// emulates a foreign instruction set, several times slower.
func (c provisionCase) timeout() time.Duration {
	if c.arch == lab.Arm64 {
		return 20 * time.Minute
	}
	return 10 * time.Minute
}

// arm64Setup makes the bench's machine an arm64 one: the site gets the
// arm64 installer, test OS and template, the workflow installs that test
// OS, and the VM is an arm64 one.
func arm64Setup(t lab.T, s *labsite.Site, imgs lab.Images, m *store.Machine, wf *store.Workflow, vmc *lab.VMConfig) {
	t.Helper()
	s.Put(t, labsite.ProvisioningARM64(t, imgs)...)
	m.Arch = store.ArchARM64
	wf.Values["image"] = labsite.TestOSARM64Name
	vmc.Arch, vmc.Firmware = lab.Arm64, lab.UEFI
}
