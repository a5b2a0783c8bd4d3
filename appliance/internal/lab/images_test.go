package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// vmBootTimeout bounds a VM's boot to userspace and beyond: under TCG the
// kernel alone takes 10-20 s, more on a busy machine.
const vmBootTimeout = 3 * time.Minute

// TestTestOSBootsFromDisk boots a VM from a copy of the test OS disk
// image as built (SeaBIOS, no NIC option ROM, so the disk is what boots)
// on a bridge with dnsmasq and a metadata service at the DHCP server's
// address, where the test OS looks without an outpost.metadata= parameter,
// and checks that it says it booted from disk, then prints the hostname
// and instance id it was served and the address it leased. Its boot with
// the parameter a workflow writes, and the installer's own boot, are what
// appliance/e2e's provisioning tests run.
func TestTestOSBootsFromDisk(t *testing.T) {
	imgs := BuildImages(t)
	Require(t, "root", "ip", "dnsmasq", "qemu-system-x86_64")
	ns, dnsmasq := dhcpNetwork(t)
	requests := serveMetadata(t, ns, "198.18.0.1:80", map[string]string{
		"/latest/meta-data/hostname":    "testos-vm1\n",
		"/latest/meta-data/instance-id": "i-0123456789",
	})

	disk := filepath.Join(t.TempDir(), "testos.raw")
	gunzip(t, imgs.TestOSGz, disk)
	vm := StartVM(t, ns, VMConfig{Tap: "tap0", DisableNICROM: true, NoReboot: true, Disks: []string{disk}})
	ctx, cancel := context.WithTimeout(t.Context(), vmBootTimeout)
	defer cancel()

	waitSerial(ctx, t, vm, `OUTPOST-TESTOS-BOOTED from disk$`)
	line := waitSerial(ctx, t, vm, `OUTPOST-TESTOS hostname=`)
	m := regexp.MustCompile(`OUTPOST-TESTOS hostname=(\S*) instance-id=(\S*) ip=(198\.18\.0\.\d+)$`).FindStringSubmatch(line)
	if m == nil || m[1] != "testos-vm1" || m[2] != "i-0123456789" {
		t.Fatalf("serial line %q, want hostname=testos-vm1 instance-id=i-0123456789 ip=198.18.0.x", line)
	}
	waitLine(ctx, t, dnsmasq, `DHCPACK\(br0\) `+regexp.QuoteMeta(m[3])+` `+regexp.QuoteMeta(vm.MAC))
	got := requests.get()
	for _, want := range []string{"instance-id", "hostname"} {
		if want = "GET /latest/meta-data/" + want; !slices.Contains(got, want) {
			t.Errorf("metadata requests %q: no %q", got, want)
		}
	}
}

// testOSSyslinuxCfg is the test OS's syslinux.cfg as built, without the
// line ending of its last line (APPEND).
const testOSSyslinuxCfg = "DEFAULT testos\nPROMPT 0\nTIMEOUT 0\nLABEL testos\n  KERNEL /vmlinuz\n" +
	"  APPEND initrd=/initrd.img console=tty0 console=ttyS0,115200 "

// TestTestOSImage checks the test OS image's layout without booting it:
// the three compressions hold the same 64 MiB disk; syslinux's MBR boot
// code; one active FAT16 partition at 1 MiB; SYSLINUX and the expected
// syslinux.cfg on it.
func TestTestOSImage(t *testing.T) {
	imgs := BuildImages(t)
	Require(t, "zstd", "xz")
	dir := t.TempDir()
	raw := filepath.Join(dir, "gz.raw")
	gunzip(t, imgs.TestOSGz, raw)
	disk, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) != 64<<20 {
		t.Fatalf("disk image is %d bytes, want 64 MiB", len(disk))
	}
	sum := sha256.Sum256(disk)
	for _, c := range []struct{ file, prog string }{{imgs.TestOSZst, "zstd"}, {imgs.TestOSXz, "xz"}} {
		out, err := exec.Command(mustLookPath(t, c.prog), "-dc", c.file).Output()
		if err != nil {
			t.Fatalf("%s -dc %s: %v", c.prog, c.file, err)
		}
		if sha256.Sum256(out) != sum {
			t.Errorf("%s does not decompress to the disk of %s", c.file, imgs.TestOSGz)
		}
	}
	for _, f := range []string{imgs.TestOSGz, imgs.TestOSZst, imgs.TestOSXz} {
		checkSidecar(t, f)
	}

	if mbr, err := os.ReadFile("/usr/lib/syslinux/mbr/mbr.bin"); err == nil && !bytes.Equal(disk[:440], mbr[:440]) {
		t.Error("the first 440 bytes are not syslinux's mbr.bin")
	}
	if disk[510] != 0x55 || disk[511] != 0xaa {
		t.Fatalf("no MBR signature: % x", disk[510:512])
	}
	p := disk[446:462] // the first partition entry
	start, size := binary.LittleEndian.Uint32(p[8:]), binary.LittleEndian.Uint32(p[12:])
	if p[0] != 0x80 || p[4] != 0x0e || start != 2048 || int(start+size) != len(disk)/512 {
		t.Fatalf("partition 1: status %#x type %#x sectors %d+%d, want active FAT16 (0xe) from 2048 to the end", p[0], p[4], start, size)
	}
	fat := disk[start*512:]
	if string(fat[54:62]) != "FAT16   " || binary.LittleEndian.Uint32(fat[28:]) != 2048 {
		t.Errorf("partition 1: file system type %q, hidden sectors %d; want FAT16, 2048", fat[54:62], binary.LittleEndian.Uint32(fat[28:]))
	}
	cfg := strings.TrimSuffix(testOSSyslinuxCfg, " ") + "\n"
	for _, s := range []string{"LDLINUX SYS", "VMLINUZ    ", "INITRD  IMG", "SYSLINUXCFG", cfg} {
		if !bytes.Contains(fat, []byte(s)) {
			t.Errorf("partition 1 does not hold %q", s)
		}
	}
}

// TestImagesRepeatable builds every artifact again from scratch into
// another directory and checks that the installer, the test initrd and
// the test OS images come out byte for byte the same as in images/out.
func TestImagesRepeatable(t *testing.T) {
	if testing.Short() {
		t.Skip("a full build of the images takes a minute")
	}
	a := BuildImages(t)
	b := BuildImagesTo(t, t.TempDir())
	for _, f := range [][2]string{
		{a.InstallerInitrd, b.InstallerInitrd},
		{a.TestInitrd, b.TestInitrd},
		{a.TestOSGz, b.TestOSGz},
		{a.TestOSZst, b.TestOSZst},
		{a.TestOSXz, b.TestOSXz},
	} {
		sa, sb := checkSidecar(t, f[0]), checkSidecar(t, f[1])
		if sa != sb {
			t.Errorf("%s: sha256 %s in one build, %s in the other", filepath.Base(f[0]), sa, sb)
		}
	}
}

// checkSidecar checks that f.sha256 holds f's digest, and returns it.
func checkSidecar(t *testing.T, f string) string {
	t.Helper()
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	sidecar, err := os.ReadFile(f + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	if string(sidecar) != want {
		t.Errorf("%s.sha256 = %q, want %q", f, sidecar, want)
	}
	return want
}

// dhcpNetwork makes a namespace with a bridge br0 at 198.18.0.1/24, a tap
// tap0 on it for a VM and dnsmasq handing out addresses on it.
func dhcpNetwork(t *testing.T) (*Netns, *Process) {
	t.Helper()
	ns := NewNetns(t, "images")
	ns.Bridge("br0", "198.18.0.1/24")
	ns.Tap("tap0", "br0")
	state := t.TempDir()
	dnsmasq := ns.Start(t, "dnsmasq",
		"--no-daemon", "--conf-file=/dev/null", "--user=root",
		"--pid-file="+filepath.Join(state, "dnsmasq.pid"),
		"--port=0", "--interface=br0", "--bind-interfaces",
		"--dhcp-range=198.18.0.100,198.18.0.150,10m", "--no-ping",
		"--dhcp-option=option:router,198.18.0.1",
		"--dhcp-leasefile="+filepath.Join(state, "leases"),
		"--log-dhcp", "--log-facility=-",
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	waitLine(ctx, t, dnsmasq, `DHCP, IP range 198\.18\.0\.100`)
	return ns, dnsmasq
}

// serveMetadata answers GETs of the paths in files on addr inside ns, as
// an EC2-style metadata service.
func serveMetadata(t *testing.T, ns *Netns, addr string, files map[string]string) *requestLog {
	t.Helper()
	ln, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	log := &requestLog{}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.add(r.Method + " " + r.URL.Path)
			t.Logf("metadata: %s %s %s", r.RemoteAddr, r.Method, r.URL.Path)
			body, ok := files[r.URL.Path]
			if !ok || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, body)
		}),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return log
}

// gunzip decompresses src into dst.
func gunzip(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		out.Close()
		t.Fatalf("gunzip %s: %v", src, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitSerial waits for a serial line matching re and logs it with the
// time since the VM started.
func waitSerial(ctx context.Context, t *testing.T, vm *VM, re string) string {
	t.Helper()
	line, err := vm.WaitSerial(ctx, regexp.MustCompile(re))
	if err != nil {
		t.Fatalf("serial console: waiting for %s: %v", re, err)
	}
	t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), line)
	return line
}

// waitLine waits for an output line of p matching re.
func waitLine(ctx context.Context, t *testing.T, p *Process, re string) string {
	t.Helper()
	line, err := p.WaitForLine(ctx, regexp.MustCompile(re))
	if err != nil {
		t.Fatalf("%s: waiting for %s: %v", p.Name, re, err)
	}
	return line
}
