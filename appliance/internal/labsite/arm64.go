package labsite

import (
	"os"
	"path/filepath"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The arm64 installer and test OS (images/build-arm64.sh), and the
// template that installs that test OS.
const (
	InstallerARM64Name = "installer-arm64"
	TestOSARM64Name    = "testos-arm64"
	ARM64TemplateName  = "install-testos-arm64"
)

// arm64Console is the serial console of QEMU's virt machine, the PL011
// UART: the last console= is /dev/console, where the installer and the
// test OS print (console=ttyS0, which the installer's boot configuration
// also names, is no device there).
const arm64Console = "console=ttyAMA0,115200"

// arm64GRUBCfg is what ARM64Template writes over the arm64 test OS's GRUB
// configuration: the image's own boot, with where its metadata is.
const arm64GRUBCfg = `set timeout=0
linux /vmlinuz console=tty0 ` + arm64Console + ` outpost.metadata={{ .metadata_url }}
initrd /initrd.img
boot
`

// ProvisioningARM64 is what a site needs besides Provisioning's to
// provision arm64 VMs: the arm64 installer (the installer of machines
// whose boot request is arm64's: store.Tx.InstallerFor), the arm64 test
// OS and ARM64Template.
func ProvisioningARM64(t lab.T, imgs lab.Images) []store.Object {
	t.Helper()
	fi, err := os.Stat(imgs.TestOSARM64Gz)
	if err != nil {
		t.Fatal(err)
	}
	return []store.Object{
		&store.Image{
			Name: InstallerARM64Name, Type: store.ImageInstaller, Arch: store.ArchARM64,
			Kernel: filepath.Base(imgs.KernelARM64), Initrd: filepath.Base(imgs.InstallerInitrdARM64),
			Cmdline: installerCmdline + " " + arm64Console,
		},
		&store.Image{
			Name: TestOSARM64Name, Type: store.ImageOS, File: filepath.Base(imgs.TestOSARM64Gz), Format: "raw.gz",
			SHA256: sidecar(t, imgs.TestOSARM64Gz), Size: uint64(fi.Size()),
		},
		ARM64Template(),
	}
}

// ARM64Template installs the arm64 test OS and reboots (the arm64
// installer has no kexec-tools): the machine, provisioned, is sent back
// to its firmware by its GRUB configuration and boots its disk through
// GRUB.
func ARM64Template() *store.Template {
	return &store.Template{
		Name:        ARM64TemplateName,
		Description: "wipe the disk, write the arm64 test OS, point it at the metadata service, reboot into it",
		Actions:     efiRebootActions(arm64GRUBCfg),
	}
}

// MachineARM64 is an arm64 machine that boots from mac.
func MachineARM64(id, mac string) *store.Machine {
	m := Machine(id, mac)
	m.Arch = store.ArchARM64
	return m
}
