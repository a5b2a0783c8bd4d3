package lab

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Firmware is what a VM boots with.
type Firmware int

const (
	// BIOS is SeaBIOS; the NIC's iPXE option ROM does the network boot, so
	// the first DHCPDISCOVER already comes from iPXE (user class "iPXE",
	// client architecture 0).
	BIOS Firmware = iota
	// UEFI is OVMF. With the NIC's option ROM the EFI iPXE driver boots
	// (client architecture 7, user class "iPXE"); with DisableNICROM EDK2's
	// own PXE client does, which needs TFTP and a chain-load of ipxe.efi.
	UEFI
	// SecureBoot is OVMF with Secure Boot enforced and Microsoft's keys
	// enrolled (OVMFCodeSecureBoot with a copy of OVMFVarsMS), on a q35
	// machine with SMM, which Debian's secboot build needs. The firmware
	// runs only signed EFI binaries: Debian's shim, GRUB and kernel, not
	// iPXE (its ipxe.efi is unsigned, and so is the NIC's iPXE option
	// ROM, so the firmware's own virtio-net driver drives the NIC).
	SecureBoot
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "BIOS"
	case UEFI:
		return "UEFI"
	case SecureBoot:
		return "SecureBoot"
	}
	return fmt.Sprintf("Firmware(%d)", int(f))
}

// OVMF's code and variable-store templates (Debian's ovmf package).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// OVMFCodeSecureBoot enforces Secure Boot (with SMM); OVMFVarsMS has
	// Microsoft's keys enrolled (db holds the UEFI CA that signs shim).
	OVMFCodeSecureBoot = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	OVMFVarsMS         = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// uefi reports whether f is one of OVMF's builds.
func (f Firmware) uefi() bool { return f == UEFI || f == SecureBoot }

// ovmf returns the firmware's code and variable-store template.
func (f Firmware) ovmf() (code, vars string) {
	if f == SecureBoot {
		return OVMFCodeSecureBoot, OVMFVarsMS
	}
	return OVMFCode, OVMFVars
}

// httpBootFwCfg are the OVMF settings (fw_cfg files under
// opt/org.tianocore/, read by EDK2's OvmfPkg PxeBcPcdProducerLib and
// NetworkPkg's platform hooks; see OvmfPkg/RUNTIME_CONFIG.md) that
// HTTPBoot turns off: PXE over IPv4 and IPv6, so that no boot option
// tries TFTP, and IPv6 altogether, so that a failed HTTPv4 boot is not
// followed by a wait for HTTPv6 on a lab network with no IPv6 DHCP.
var httpBootFwCfg = []string{"IPv4PXESupport", "IPv6PXESupport", "IPv6Support"}

// AAVMF's code and variable-store template (Debian's qemu-efi-aarch64
// package): EDK2 for arm64 VMs, without Secure Boot enforced.
const (
	AAVMFCode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	AAVMFVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// Arm64 is VMConfig.Arch for an arm64 VM.
const Arm64 = "arm64"

// GuestKernelArgs are kernel arguments every lab guest's Linux boots
// with. no_timer_check: under TCG on a starved host the kernel's early
// check of the IO-APIC timer can see too few ticks and panic ("IO-APIC +
// timer doesn't work!"), which a run at load average 30 did; virtual
// machines' images commonly skip the check. It is x86's; arm64's kernel
// passes it on to init, which ignores it.
const GuestKernelArgs = "no_timer_check"

// nicROMs are the option ROMs QEMU loads for NIC models, from ipxe-qemu.
var nicROMs = map[string]string{
	"virtio-net-pci": "/usr/lib/ipxe/qemu/efi-virtio.rom",
	"e1000":          "/usr/lib/ipxe/qemu/efi-e1000.rom",
	"e1000e":         "/usr/lib/ipxe/qemu/efi-e1000e.rom",
	"rtl8139":        "/usr/lib/ipxe/qemu/efi-rtl8139.rom",
}

// VMConfig describes a VM with one NIC on a tap in a namespace. It
// network-boots, boots its first disk (DisableNICROM under BIOS), or boots
// Kernel directly.
type VMConfig struct {
	// Tap is the tap device, in the VM's namespace, for its one NIC
	// (Netns.Tap). Required.
	Tap string
	// MAC is the NIC's address. Default: 52:54:00 and three bytes hashed
	// from the test's name and a sequence number.
	MAC string
	// Firmware is BIOS (default), UEFI or SecureBoot.
	Firmware Firmware
	// Arch is "" (x86-64) or Arm64: qemu-system-aarch64's virt machine
	// with a Cortex-A57, AAVMF (UEFI, so Firmware must be UEFI) and its
	// serial console on the PL011 UART (ttyAMA0). No NIC option ROM is
	// loaded (ipxe-qemu's are x86): EDK2's own PXE client boots.
	Arch string
	// NIC is QEMU's NIC model. Default "virtio-net-pci".
	NIC string
	// DisableNICROM loads no option ROM for the NIC (romfile=). Under UEFI
	// EDK2's PXE client boots instead of iPXE; under BIOS nothing can
	// network-boot.
	DisableNICROM bool
	// HTTPBoot makes OVMF boot the NIC by UEFI HTTP boot instead of PXE
	// (UEFI or SecureBoot firmware only; it implies DisableNICROM, since
	// the NIC's iPXE ROM would boot instead of EDK2's HTTP client). OVMF
	// offers PXE before HTTP in its boot order, so its PXE client and its
	// IPv6 stack are switched off through fw_cfg (httpBootFwCfg): the
	// first network boot option left is HTTP over IPv4, which sends
	// client architecture 16 and class HTTPClient and fetches the http://
	// boot file the DHCP server names.
	HTTPBoot bool
	// MemoryMB is the guest's memory. Default 512, or 1024 under UEFI and
	// SecureBoot.
	MemoryMB int
	// Disks are disk images attached as virtio-blk, in boot order after
	// the NIC; raw unless the name ends in .qcow2.
	Disks []string
	// NoReboot ends QEMU when the guest reboots (-no-reboot). A guest
	// power-off always ends it.
	NoReboot bool
	// Kernel, if set, is booted directly (-kernel) rather than through
	// the firmware's boot order, with the initramfs Initrd (-initrd, if
	// set) and the command line Append (-append).
	Kernel string
	Initrd string
	Append string
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
}

var vmSeq atomic.Uint64

// VM is a QEMU virtual machine under software emulation (-accel tcg: the
// lab never relies on KVM) whose serial console is captured. The NIC comes
// first in the boot order (bootindex=1, which SeaBIOS and OVMF both
// follow; it does what -boot n does), then the disks. It is killed when
// the test ends.
type VM struct {
	MAC    string
	Serial string    // path of the file holding the serial console's output
	Start  time.Time // when QEMU was started
	proc   *Process
}

// StartVM starts a VM in ns.
func StartVM(t T, ns *Netns, cfg VMConfig) *VM {
	t.Helper()
	args := vmArgs(t, &cfg)
	name := "vm-" + strings.ReplaceAll(cfg.MAC, ":", "")
	v := &VM{MAC: cfg.MAC, Start: time.Now()}
	v.proc = startProcess(t, ProcessConfig{Name: name, Netns: ns, Args: args}, false)
	v.proc.outLabel = "serial console"
	v.Serial = v.proc.Stdout
	return v
}

// VMCommand returns the QEMU command line of the VM cfg describes, for a
// program other than the lab to run, such as a BMC simulator that starts
// the VM on power on. Its serial console is a telnet server on a loopback
// port of the namespace QEMU runs in (SerialAddr finds it in args), for
// the simulator's serial-over-LAN to connect to (StartIPMISim's does),
// and everything the guest prints also goes to the file serial
// (vm-<MAC>-serial.log, a log file as a process's output is), with or
// without a client on the socket, truncated when QEMU starts again. The
// caller reads the file and makes sure QEMU ends.
//
// The port is one that was free on the test's own loopback: in a
// namespace of the lab's, where nothing else listens but what the test
// starts, QEMU finds it free too.
func VMCommand(t T, cfg VMConfig) (args []string, serial string) {
	t.Helper()
	args = vmArgs(t, &cfg)
	serial = logFiles(t, "vm-"+strings.ReplaceAll(cfg.MAC, ":", "")+"-serial", ".log")[0]
	port, err := freePort(nil, "tcp", "127.0.0.1")
	if err != nil {
		t.Fatalf("lab: a port for the serial console: %v", err)
	}
	// The socket replaces the stdio serial.
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-serial" && args[i+1] == "stdio" {
			args = slices.Replace(args, i, i+2, serialSocket("127.0.0.1", port, serial)...)
			break
		}
	}
	return args, serial
}

// serialSocket is the QEMU arguments of a serial console served as a
// telnet server on host:port and logged to the file logfile. wait=off:
// the guest runs without waiting for a client.
func serialSocket(host string, port int, logfile string) []string {
	// A comma is doubled in a QEMU option's value.
	logfile = strings.ReplaceAll(logfile, ",", ",,")
	return []string{
		"-chardev", fmt.Sprintf("socket,id=%s,host=%s,port=%d,server=on,wait=off,telnet=on,logfile=%s", serialID, host, port, logfile),
		"-serial", "chardev:" + serialID,
	}
}

// serialID is the id of the serial console's chardev.
const serialID = "serial0"

// SerialAddr returns the address (host:port) of the telnet socket that
// serves the serial console in a command line VMCommand made, or "" if
// args has none.
func SerialAddr(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-chardev" || !strings.HasPrefix(args[i+1], "socket,id="+serialID+",") {
			continue
		}
		var host, port string
		for _, kv := range strings.Split(args[i+1], ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "host":
				host = v
			case "port":
				port = v
			}
		}
		if host != "" && port != "" {
			return net.JoinHostPort(host, port)
		}
	}
	return ""
}

// vmArgs fills cfg's defaults, checks that what it needs is there, and
// returns QEMU's command line.
func vmArgs(t T, cfg *VMConfig) []string {
	t.Helper()
	if cfg.Tap == "" {
		t.Fatal("lab: VM: no tap")
	}
	if cfg.NIC == "" {
		cfg.NIC = "virtio-net-pci"
	}
	if cfg.HTTPBoot {
		if !cfg.Firmware.uefi() {
			t.Fatalf("lab: VM: HTTPBoot needs UEFI firmware, not %s", cfg.Firmware)
		}
		cfg.DisableNICROM = true
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 512
		if cfg.Firmware.uefi() {
			cfg.MemoryMB = 1024
		}
	}
	seq := vmSeq.Add(1)
	if cfg.MAC == "" {
		cfg.MAC = defaultMAC(t.Name(), seq)
	}
	if err := cfg.checkArch(); err != nil {
		t.Fatal(err)
	}
	need := []string{cfg.qemu()}
	if rom, ok := nicROMs[cfg.NIC]; ok && !cfg.DisableNICROM {
		need = append(need, rom)
	}
	if cfg.Firmware.uefi() {
		code, vars := cfg.firmware()
		need = append(need, code, vars)
	}
	for _, f := range []string{cfg.Kernel, cfg.Initrd} {
		if f != "" {
			need = append(need, f)
		}
	}
	Require(t, need...)
	args, err := qemuArgs(*cfg, seq, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return args
}

// checkArch says what is wrong with cfg's architecture, and makes an
// arm64 VM's NIC load no (x86) option ROM.
func (cfg *VMConfig) checkArch() error {
	switch cfg.Arch {
	case "":
		return nil
	case Arm64:
		if cfg.Firmware != UEFI {
			return fmt.Errorf("lab: VM: arm64 boots with UEFI (AAVMF), not %s", cfg.Firmware)
		}
		cfg.DisableNICROM = true
		return nil
	}
	return fmt.Errorf("lab: VM: unknown arch %q (want \"\" for x86-64 or %q)", cfg.Arch, Arm64)
}

// qemu is the QEMU system emulator of cfg's architecture.
func (cfg *VMConfig) qemu() string {
	if cfg.Arch == Arm64 {
		return "qemu-system-aarch64"
	}
	return "qemu-system-x86_64"
}

// firmware returns the UEFI firmware's code and variable-store template
// of cfg's architecture.
func (cfg *VMConfig) firmware() (code, vars string) {
	if cfg.Arch == Arm64 {
		return AAVMFCode, AAVMFVars
	}
	return cfg.Firmware.ovmf()
}

// defaultMAC derives a locally administered, QEMU-style address.
func defaultMAC(testName string, seq uint64) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d/%d", testName, os.Getpid(), seq)
	s := h.Sum32()
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", byte(s>>16), byte(s>>8), byte(s))
}

// qemuArgs builds the command line; dir receives the UEFI variable store.
func qemuArgs(cfg VMConfig, seq uint64, dir string) ([]string, error) {
	args := []string{
		cfg.qemu(),
		"-name", fmt.Sprintf("outpost-lab-%d-%d", os.Getpid(), seq),
		"-accel", "tcg",
		"-m", fmt.Sprint(cfg.MemoryMB),
		"-nographic",
		"-serial", "stdio",
		"-monitor", "none",
		"-netdev", "tap,id=net0,ifname=" + cfg.Tap + ",script=no,downscript=no",
	}
	nic := cfg.NIC + ",netdev=net0,mac=" + cfg.MAC + ",bootindex=1"
	if cfg.DisableNICROM {
		nic += ",romfile="
	}
	args = append(args, "-device", nic)
	if cfg.Arch == Arm64 {
		// virt: PCIe, a PL011 UART (the serial console), flash for AAVMF.
		args = append(args, "-machine", "virt", "-cpu", "cortex-a57")
	}
	if cfg.Firmware.uefi() {
		code, tmpl := cfg.firmware()
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(tmpl, vars, 0o600); err != nil {
			return nil, err
		}
		if cfg.Firmware == SecureBoot {
			// The secboot build keeps its variables safe in SMM: q35
			// with SMM on, and flash writable only from SMM.
			args = append(args, "-machine", "q35,smm=on",
				"-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
		if cfg.HTTPBoot {
			for _, knob := range httpBootFwCfg {
				args = append(args, "-fw_cfg", "name=opt/org.tianocore/"+knob+",string=no")
			}
		}
	}
	for i, d := range cfg.Disks {
		format := "raw"
		if strings.HasSuffix(d, ".qcow2") {
			format = "qcow2"
		}
		id := fmt.Sprintf("disk%d", i)
		args = append(args,
			"-drive", "if=none,id="+id+",format="+format+",file="+d,
			"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,bootindex=%d", id, i+2))
	}
	if cfg.NoReboot {
		args = append(args, "-no-reboot")
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel)
		if cfg.Initrd != "" {
			args = append(args, "-initrd", cfg.Initrd)
		}
		if cfg.Append != "" {
			args = append(args, "-append", cfg.Append)
		}
	}
	return append(args, cfg.ExtraArgs...), nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("lab: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// WaitSerial waits for a line on the serial console that matches re and
// returns it. Lines are consumed as described in the package comment. It
// fails when ctx is done or QEMU exits first.
func (v *VM) WaitSerial(ctx context.Context, re *regexp.Regexp) (string, error) {
	return v.proc.WaitForLine(ctx, re)
}

// Wait waits for QEMU to exit (the guest powered off, or rebooted under
// NoReboot) and returns its exit error, or ctx's error.
func (v *VM) Wait(ctx context.Context) error { return v.proc.Wait(ctx) }

// Exited is closed once QEMU has exited.
func (v *VM) Exited() <-chan struct{} { return v.proc.Exited() }

// Kill kills QEMU and waits for it to exit. It is safe to call more than
// once.
func (v *VM) Kill() { v.proc.Kill() }

// QEMU is the QEMU process itself: its stdout is the serial console, its
// stderr QEMU's own messages.
func (v *VM) QEMU() *Process { return v.proc }
