package labsite

import (
	"os"
	"path/filepath"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// Names of the objects Provisioning stores.
const (
	SubnetName    = "lab"
	InstallerName = "installer"
	TestOSName    = "testos"
	// TemplateName is the install template that boots the installed test
	// OS with kexec (InstallTemplate); RebootTemplateName's reboots the
	// machine through its firmware instead (RebootTemplate).
	TemplateName       = "install-testos"
	RebootTemplateName = "install-testos-reboot"
	// Disk is the VM's disk as the installer sees it: the first virtio
	// block device.
	Disk = "/dev/vda"
	// Partition is the test OS's file system on Disk: its boot loader's
	// configuration, kernel and initramfs.
	Partition = Disk + "1"
)

// The test OS's kernel and initramfs on Partition, as its SYSLINUX
// configuration names them (images/build.sh).
const (
	testOSKernel = "/vmlinuz"
	testOSInitrd = "/initrd.img"
)

// testOSCmdline is the test OS's kernel command line: its consoles, as
// the image's own SYSLINUX configuration has them, and where its
// metadata is. The test OS runs from its initramfs, so it names no
// root file system (an OS with one adds root= here, as its boot loader
// does). lab.GuestKernelArgs keeps a starved TCG guest's timer check
// from panicking it.
const testOSCmdline = "console=tty0 console=ttyS0,115200 " + lab.GuestKernelArgs + " outpost.metadata={{ .metadata_url }}"

// syslinuxCfg is what the workflow writes over the test OS's boot
// configuration: the same boot, with where its metadata is. Both
// templates write it: a machine installed with kexec boots the same way
// through its firmware the next time.
const syslinuxCfg = `DEFAULT testos
PROMPT 0
TIMEOUT 0
LABEL testos
  KERNEL ` + testOSKernel + `
  APPEND initrd=` + testOSInitrd + ` ` + testOSCmdline + `
`

// installerCmdline is the installer's extra kernel arguments: a
// panicking installer reboots, and so boots again. Not
// lab.GuestKernelArgs: a virtual media ISO takes only name=value
// arguments (vmedia), and no_timer_check is a bare word.
const installerCmdline = "panic=10"

// Provisioning is what a site needs to provision VMs with the test OS:
// Network's subnet and templates, with the installer and the test OS
// image (with its sha256 from the build's sidecar) as files in the
// artifact directory, in the order
//
//	subnet, installer, test OS, InstallTemplate, WipeTemplate, RebootTemplate
//
// PublishImages puts the same two images at central as artifacts
// instead.
func Provisioning(t lab.T, imgs lab.Images) []store.Object {
	t.Helper()
	fi, err := os.Stat(imgs.TestOSGz)
	if err != nil {
		t.Fatal(err)
	}
	net := Network()
	return append([]store.Object{
		net[0],
		&store.Image{
			Name: InstallerName, Type: store.ImageInstaller,
			Kernel: filepath.Base(imgs.Kernel), Initrd: filepath.Base(imgs.InstallerInitrd),
			Cmdline: installerCmdline,
		},
		&store.Image{
			Name: TestOSName, Type: store.ImageOS, File: filepath.Base(imgs.TestOSGz), Format: "raw.gz",
			SHA256: sidecar(t, imgs.TestOSGz), Size: uint64(fi.Size()),
		},
	}, net[1:]...)
}

// Network is what a site needs besides its images: the subnet of the
// bridge and the templates, in the order
//
//	subnet, InstallTemplate, WipeTemplate, RebootTemplate
func Network() []store.Object {
	return []store.Object{
		&store.Subnet{
			Name: SubnetName, CIDR: "198.18.0.0/24", Gateway: ServerIP, DNS: []string{ServerIP},
			Pools:     []store.Range{{Start: "198.18.0.100", End: "198.18.0.250"}},
			Discovery: true,
		},
		InstallTemplate(),
		WipeTemplate(),
		RebootTemplate(),
	}
}

// WipeTemplate is the template of deprovisioning: the disk is wiped, and
// the machine powers off by its BMC (the deprovision order's last job).
func WipeTemplate() *store.Template {
	return &store.Template{
		Name:        site.DefaultDeprovisionTemplate,
		Description: "wipe the disk",
		Actions: []store.Action{
			{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": Disk}, Timeout: store.Duration(2 * time.Minute)},
		},
	}
}

// InstallTemplate is the template of the lab, the demo and the
// provisioning benchmark,
//
//	wipe → write → configure → kexec
//
// which wipes the disk, writes the image (retried once), points the test
// OS at the metadata service by rewriting its SYSLINUX configuration (for
// the boots after this one), and boots the installed kernel and
// initramfs with kexec, with the command line that configuration gives:
// the machine does not go through its firmware, iPXE and boot loader
// again. RebootTemplate is the same install ending in a reboot.
func InstallTemplate() *store.Template {
	return &store.Template{
		Name: TemplateName,
		Description: "wipe the disk, write the test OS, point it at the metadata service, " +
			"boot its kernel with kexec",
		Actions: append(installActions(), store.Action{
			Name: "kexec", Type: "kexec", Needs: []string{"configure"},
			Args: map[string]string{
				"device": Partition, "kernel": testOSKernel, "initrd": testOSInitrd, "cmdline": testOSCmdline,
			},
			Timeout: store.Duration(2 * time.Minute),
		}),
	}
}

// RebootTemplate is InstallTemplate ending in a reboot through the
// machine's firmware, which then boots the disk: for an OS that kexec
// cannot start (a kernel the installer's refuses to load, firmware state
// the OS needs set up afresh).
func RebootTemplate() *store.Template {
	return &store.Template{
		Name:        RebootTemplateName,
		Description: "wipe the disk, write the test OS, point it at the metadata service, reboot into it",
		Actions:     append(installActions(), store.Action{Name: "reboot", Type: "reboot", Needs: []string{"configure"}}),
	}
}

// installActions are the actions both install templates start with:
// wipe → write → configure.
func installActions() []store.Action {
	return []store.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": Disk}, Timeout: store.Duration(2 * time.Minute)},
		{Name: "write", Type: "image.write", Args: map[string]string{"device": Disk, "image": "{{ .image }}"},
			Needs: []string{"wipe"}, Timeout: store.Duration(10 * time.Minute), Retries: 1, Backoff: store.Duration(2 * time.Second)},
		{Name: "configure", Type: "file.write", Args: map[string]string{
			"device": Partition, "fstype": "vfat", "path": "/syslinux.cfg", "content": syslinuxCfg,
		}, Needs: []string{"write"}, Timeout: store.Duration(2 * time.Minute), Retries: 1, Backoff: store.Duration(2 * time.Second)},
	}
}

// Machine is a machine that boots from mac.
func Machine(id, mac string) *store.Machine {
	return &store.Machine{
		ID: id, Hostname: id, Arch: "x86_64",
		Interfaces: []store.Interface{{Name: "eth0", MAC: mac, Boot: true}},
	}
}

// Workflow provisions machine with the test OS image named image, giving
// it hostname.
func Workflow(id, machine, image, hostname string) *store.Workflow {
	return &store.Workflow{
		ID: id, MachineID: machine, Template: TemplateName,
		Values: map[string]string{"image": image, "hostname": hostname},
	}
}

// The EFI test OS (images/build.sh: testos-efi.raw.gz) and the template
// that installs it on a Secure Boot machine.
const (
	TestOSEFIName          = "testos-efi"
	SecureBootTemplateName = "install-testos-efi"
)

// secureBootGRUBCfg is what SecureBootTemplate writes over the EFI test
// OS's GRUB configuration: the image's own boot, with where its metadata
// is.
const secureBootGRUBCfg = `set timeout=0
linux /vmlinuz ` + testOSCmdline + `
initrd /initrd.img
boot
`

// SecureBootTemplate installs the EFI test OS and reboots: under Secure
// Boot the installer's kernel is locked down and kexec_load is refused,
// so the machine boots its disk through its firmware, shim and GRUB.
func SecureBootTemplate() *store.Template {
	return &store.Template{
		Name:        SecureBootTemplateName,
		Description: "wipe the disk, write the EFI test OS, point it at the metadata service, reboot into it",
		Actions:     efiRebootActions(secureBootGRUBCfg),
	}
}

// efiRebootActions are the actions of the templates that install an EFI
// test OS and reboot into it: wipe → write → configure (grubCfg over the
// image's GRUB configuration) → reboot.
func efiRebootActions(grubCfg string) []store.Action {
	return []store.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": Disk}, Timeout: store.Duration(2 * time.Minute)},
		{Name: "write", Type: "image.write", Args: map[string]string{"device": Disk, "image": "{{ .image }}"},
			Needs: []string{"wipe"}, Timeout: store.Duration(10 * time.Minute)},
		{Name: "configure", Type: "file.write", Args: map[string]string{
			"device": Partition, "fstype": "vfat", "path": "/EFI/debian/grub.cfg", "content": grubCfg,
		}, Needs: []string{"write"}, Timeout: store.Duration(2 * time.Minute)},
		{Name: "reboot", Type: "reboot", Needs: []string{"configure"}},
	}
}

// TestOSEFIImage is the EFI test OS as an image of the artifact
// directory.
func TestOSEFIImage(t lab.T, imgs lab.Images) *store.Image {
	t.Helper()
	fi, err := os.Stat(imgs.TestOSEFIGz)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Image{Name: TestOSEFIName, Type: store.ImageOS, File: filepath.Base(imgs.TestOSEFIGz), Format: "raw.gz",
		SHA256: sidecar(t, imgs.TestOSEFIGz), Size: uint64(fi.Size())}
}
