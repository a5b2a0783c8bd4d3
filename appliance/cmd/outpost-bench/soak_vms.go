package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/soak"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// soakVMs is how many real VMs the soak adds to its machines.
var soakVMs = flag.Int("soak-vms", 0,
	"real QEMU VMs (x86-64, BIOS with the NIC's iPXE ROM), each behind an ipmi_sim of its own, among the soak's machines: "+
		"they boot the installer, write the test OS and boot it")

// soakMaxVMs bounds -soak-vms: each VM is a QEMU under software
// emulation, about a core while it boots.
const soakMaxVMs = 8

// The VMs' boot network: a bridge in the machines' namespace holding
// its link to the switch (sim.ClientIface) and a tap per VM, so that a
// VM's DHCP is a broadcast on the site's boot network, as a server's.
const soakVMBridge = "br-vm"

// soakVMImageFiles are the VMs' OS images, by name at the site: the
// test OS, the same disk compressed with gzip and with zstd (the
// installer's two decompressors). A provision of a VM picks one, as a
// simulated machine's picks one of soakImages (4 MiB of random bytes,
// which boot nothing).
var soakVMImageFiles = map[string]string{"soak-testos-gz": "testos.raw.gz", "soak-testos-zst": "testos.raw.zst"}

// soakVMImages are soakVMImageFiles' names, in a fixed order for the
// seeded draws.
var soakVMImages = []string{"soak-testos-gz", "soak-testos-zst"}

// soakVMBootWait bounds the wait, once a VM's provision succeeded, for
// its test OS to print the metadata it read: a kexec or a reboot through
// SeaBIOS, iPXE and SYSLINUX, then DHCP and two HTTP requests, under
// software emulation on a loaded machine.
const soakVMBootWait = 5 * time.Minute

// testOSLine is what the test OS prints once it has read its metadata.
var testOSLine = regexp.MustCompile(`OUTPOST-TESTOS hostname=(\S*) instance-id=(\S*)`)

// soakVM is a real machine of the soak: QEMU, which its BMC starts on
// power on and kills on power off.
type soakVM struct {
	serial string // the serial console's file, truncated when QEMU starts
	qmp    string // QEMU's QMP socket
}

// soakVMIDs are the ids of n VMs.
func soakVMIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("soak-vm%d", i)
	}
	return ids
}

// linkSoakVMImages puts the VMs' OS images from src (images/out) into
// the artifact directory the nodes serve, and returns their records.
func linkSoakVMImages(src string, art *sim.Artifacts) ([]store.Object, error) {
	var out []store.Object
	for _, name := range soakVMImages {
		file := soakVMImageFiles[name]
		fi, err := os.Stat(filepath.Join(src, file))
		if err != nil {
			return nil, fmt.Errorf("the VMs' image %s: %w (build it with `make images`)", file, err)
		}
		sum, err := os.ReadFile(filepath.Join(src, file+".sha256"))
		if err != nil {
			return nil, fmt.Errorf("the VMs' image %s: %w", file, err)
		}
		for _, f := range []string{file, file + ".sha256"} {
			if err := os.Link(filepath.Join(src, f), filepath.Join(art.Dir, f)); err != nil && !os.IsExist(err) {
				return nil, fmt.Errorf("the VMs' image: %w", err)
			}
		}
		_, format, _ := strings.Cut(file, ".") // testos.raw.gz: raw.gz
		out = append(out, &store.Image{Name: name, Type: store.ImageOS, File: file, Format: format,
			SHA256: strings.TrimSpace(string(sum)), Size: uint64(fi.Size())})
	}
	return out, nil
}

// bridgeSoakVMs makes ns's link to the switch (sim.ClientIface, at
// sim.ClientAddr) a port of a bridge that takes its address and MAC,
// for the VMs' taps; call it before anything binds the address. The
// bridge answers IPv6 router solicitations: iPXE otherwise waits ~15 s
// for a router at each boot.
func bridgeSoakVMs(t lab.T, ns *lab.Netns) error {
	var mac string
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(sim.ClientIface)
		if err == nil {
			mac = ifi.HardwareAddr.String()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("the VMs' bridge: %w", err)
	}
	ns.Bridge(soakVMBridge, "")
	cidr := sim.ClientAddr + "/16"
	for _, args := range [][]string{
		{"link", "set", soakVMBridge, "address", mac}, // the address the switch's hosts know
		{"addr", "del", cidr, "dev", sim.ClientIface},
		{"link", "set", sim.ClientIface, "master", soakVMBridge},
		{"addr", "add", cidr, "dev", soakVMBridge},
	} {
		if out, err := ns.Run(t.Context(), "ip", args...); err != nil {
			return fmt.Errorf("the VMs' bridge: ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	ns.AnswerRouterSolicitations(t, soakVMBridge)
	return nil
}

// startSoakVMs adds a VM for each id to the fleet: a tap on the VMs'
// bridge in vmNS, an empty 256 MiB disk, and a BMC (ipmi_sim, with the
// simulated machines' in the fleet's BMC namespace) whose power on starts
// QEMU in vmNS. The VMs start powered off. Each VM's DHCP ACKs, as its
// tap carries them, go to the checker until ctx ends.
func startSoakVMs(ctx context.Context, t lab.T, f *soakFleet, vmNS *lab.Netns, ids []string) error {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return err
	}
	for i, id := range ids {
		mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x5a, 0x00, byte(i)}
		tap := fmt.Sprintf("vmtap%d", i)
		vmNS.Tap(tap, soakVMBridge)
		vm := &soakVM{qmp: filepath.Join(t.TempDir(), "qmp.sock")}
		var args []string
		args, vm.serial = lab.VMCommand(t, lab.VMConfig{Tap: tap, MAC: mac.String(), MemoryMB: 1024,
			Disks: []string{labsite.NewDisk(t, 256<<20)}, ExtraArgs: []string{"-qmp", "unix:" + vm.qmp + ",server=on,wait=off"}})
		// ip netns exec execs QEMU: it stays ipmi_sim's child, killed on
		// power off.
		bmc := lab.StartIPMISim(t, lab.IPMISimConfig{Name: id, Netns: f.bmcNetns, Addr: soakBMCAddr,
			StartArgs: append([]string{ip, "netns", "exec", vmNS.Name}, args...)})
		m := &soakMachine{Machine: sim.Machine{ID: id, MAC: mac}, bmc: bmc, vm: vm}
		f.list = append(f.list, m)
		f.byID[id] = m
		fd, err := openPacketSocket(vmNS, tap, nil)
		if err != nil {
			return fmt.Errorf("%s: capture its DHCP: %w", id, err)
		}
		go watchACKs(ctx, fd, mac, f.chk)
	}
	return nil
}

// watchACKs feeds the checker each DHCP ACK to mac read from fd (a
// packet socket of its tap: what the VM was sent), until ctx ends; it
// closes fd.
func watchACKs(ctx context.Context, fd int, mac net.HardwareAddr, chk *soak.Checker) {
	defer syscall.Close(fd)
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		n, err := syscall.Read(fd, buf)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		if addr, ok := ackTo(buf[:n], mac); ok {
			chk.ACK(mac.String(), addr)
		}
	}
}

// ackTo is the address a DHCP ACK to mac in pkt (an IPv4 packet) gives:
// a BOOTREPLY from port 67 (a server's or a relay's).
func ackTo(pkt []byte, mac net.HardwareAddr) (string, bool) {
	m, ok := dhcpAnswer(pkt)
	if !ok || m.OpCode != dhcpv4.OpcodeBootReply || m.MessageType() != dhcpv4.MessageTypeAck || m.ClientHWAddr.String() != mac.String() || m.YourIPAddr.IsUnspecified() {
		return "", false
	}
	return m.YourIPAddr.String(), true
}

// waitBooted waits (up to soakVMBootWait) for the VM's test OS to say
// it read the metadata of the provision whose hostname was hostname,
// and checks that its instance id is id.
func (vm *soakVM) waitBooted(ctx context.Context, hostname, id string) error {
	var got []string
	err := pollEvery(ctx, 2*time.Second, soakVMBootWait, func() error {
		raw, err := os.ReadFile(vm.serial)
		if err != nil {
			return err
		}
		if got = bootedAs(raw, hostname); got == nil {
			return fmt.Errorf("no %q with hostname=%s on its serial console", "OUTPOST-TESTOS", hostname)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; its serial console's last lines:\n%s", err, lastLines(vm.serial, 8))
	}
	if got[2] != id {
		return fmt.Errorf("its test OS says instance-id=%s, want %s", got[2], id)
	}
	return nil
}

// bootedAs is the test OS's line with hostname on a serial console, as
// testOSLine's submatches; nil if there is none.
func bootedAs(console []byte, hostname string) []string {
	for _, m := range testOSLine.FindAllStringSubmatch(string(console), -1) {
		if m[1] == hostname {
			return m
		}
	}
	return nil
}

// reset resets the VM (QMP system_reset) as a panicking installer
// reboots its machine: it boots again from its firmware.
func (vm *soakVM) reset(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	q, err := lab.DialQMP(cctx, vm.qmp)
	if err != nil {
		return err
	}
	defer q.Close()
	_, err = q.Execute(cctx, "system_reset", nil)
	return err
}

// vmTails is the last n lines of each VM's serial console.
func (f *soakFleet) vmTails(n int) string {
	var b strings.Builder
	for _, m := range f.list {
		if m.vm != nil {
			fmt.Fprintf(&b, "--- %s's serial console\n%s\n", m.ID, lastLines(m.vm.serial, n))
		}
	}
	return b.String()
}
