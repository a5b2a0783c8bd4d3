package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bootScript is what iPXE gets over HTTP: Debian's kernel and the test
// initrd, which prints OUTPOST-BOOT-OK with the values below and powers
// off. initrd= on the kernel line is what UEFI needs; BIOS ignores it.
// panic=-1 turns a kernel panic into a reboot, which ends QEMU at once
// under -no-reboot instead of at the test's timeout.
const bootScript = `#!ipxe
kernel http://198.18.0.1:8080/vmlinuz initrd=test-initrd.img console=ttyS0 panic=-1 ` + GuestKernelArgs + ` outpost.machine=labtest outpost.mac=${net0/mac}
initrd http://198.18.0.1:8080/test-initrd.img
boot
`

// TestNetbootBIOS proves images/ and the harness end to end with real
// peers and no Outpost code: dnsmasq (DHCP, TFTP) and a net/http server
// in a namespace, and a QEMU VM whose SeaBIOS runs the NIC's iPXE ROM,
// which DHCPs, fetches the script, the kernel and the initrd, and boots
// them to OUTPOST-BOOT-OK.
func TestNetbootBIOS(t *testing.T) {
	imgs := BuildImages(t)
	Require(t, "root", "ip", "dnsmasq", "tftp", "qemu-system-x86_64")

	ns := NewNetns(t, "netboot")
	ns.Bridge("br0", "198.18.0.1/24")
	ns.Tap("tap0", "br0")
	// Without a router advertisement iPXE waits ~15 s for IPv6.
	ns.AnswerRouterSolicitations(t, "br0")
	requests := serveBoot(t, ns, imgs)

	// dnsmasq serves only world-readable files over TFTP.
	tftpRoot := t.TempDir()
	if err := copyFile(imgs.UndionlyKPXE, filepath.Join(tftpRoot, "undionly.kpxe"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	dnsmasq := ns.Start(t, "dnsmasq",
		"--no-daemon", "--conf-file=/dev/null", "--user=root",
		"--pid-file="+filepath.Join(state, "dnsmasq.pid"),
		"--port=0", "--interface=br0", "--bind-interfaces",
		"--dhcp-range=198.18.0.100,198.18.0.150,2m", "--no-ping",
		"--dhcp-leasefile="+filepath.Join(state, "leases"),
		"--enable-tftp", "--tftp-root="+tftpRoot,
		"--log-dhcp", "--log-facility=-",
		"--dhcp-userclass=set:ipxe,iPXE",
		"--dhcp-boot=tag:ipxe,http://198.18.0.1:8080/boot.ipxe",
		"--dhcp-boot=tag:!ipxe,undionly.kpxe",
		// iPXE's "no-pxedhcp" setting (option 175, sub-option 176):
		// without it iPXE waits seconds for ProxyDHCP offers.
		"--dhcp-option=tag:ipxe,encap:175,176,1b",
	)
	ctx, cancel := context.WithTimeout(t.Context(), 180*time.Second)
	defer cancel()
	if _, err := dnsmasq.WaitForLine(ctx, regexp.MustCompile(`TFTP root is`)); err != nil {
		t.Fatal(err)
	}
	checkTFTP(t, ns, imgs.UndionlyKPXE)

	vm := StartVM(t, ns, VMConfig{Tap: "tap0", Firmware: BIOS, MemoryMB: 512, NoReboot: true})
	logTimeline(ctx, t, vm)
	line, err := vm.WaitSerial(ctx, regexp.MustCompile(`OUTPOST-BOOT-OK outpost\.machine=(\S*) outpost\.mac=(\S*)`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%6.1fs %s", time.Since(vm.Start).Seconds(), line)
	if want := "OUTPOST-BOOT-OK outpost.machine=labtest outpost.mac=" + vm.MAC; !strings.Contains(line, want) {
		t.Errorf("serial line %q, want %q", line, want)
	}
	if err := vm.Wait(ctx); err != nil {
		t.Errorf("QEMU after the guest's poweroff: %v", err)
	}
	t.Logf("%6.1fs powered off", time.Since(vm.Start).Seconds())

	wait := func(re string) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := dnsmasq.WaitForLine(c, regexp.MustCompile(re)); err != nil {
			t.Error(err)
		}
	}
	wait(`user class: iPXE`)
	wait(`DHCPACK\(br0\) 198\.18\.0\.\d+ ` + regexp.QuoteMeta(vm.MAC))

	want := []string{"GET /boot.ipxe", "GET /vmlinuz", "GET /test-initrd.img"}
	if got := requests.get(); !slices.Equal(got, want) {
		t.Errorf("HTTP requests %q, want %q", got, want)
	}
}

// logTimeline logs when the boot passed its milestones, seen on the serial
// console. A milestone not seen is logged, not failed on: the wording is
// iPXE's and the kernel's.
func logTimeline(ctx context.Context, t *testing.T, vm *VM) {
	for _, m := range []struct{ what, re string }{
		{"iPXE ROM runs", `iPXE initialising devices`},
		{"DHCP done", `Configuring \(net0 .*ok`},
		{"script fetched", `boot\.ipxe\.\.\. ok`},
		{"kernel and initrd fetched", `test-initrd\.img\.\.\. ok`},
		{"kernel runs", `Linux version`},
	} {
		if _, err := vm.WaitSerial(ctx, regexp.MustCompile(m.re)); err != nil {
			t.Logf("milestone %q not seen: %v", m.what, err)
			continue
		}
		t.Logf("%6.1fs %s", time.Since(vm.Start).Seconds(), m.what)
	}
}

// requestLog records the requests a server answered.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, s)
}

func (l *requestLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs...)
}

// serveBoot serves the boot script, kernel and initrd on 198.18.0.1:8080
// inside ns.
func serveBoot(t *testing.T, ns *Netns, imgs Images) *requestLog {
	dir := t.TempDir()
	files := map[string]string{
		"boot.ipxe":       filepath.Join(dir, "boot.ipxe"),
		"vmlinuz":         imgs.Kernel,
		"test-initrd.img": imgs.TestInitrd,
	}
	if err := os.WriteFile(files["boot.ipxe"], []byte(bootScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Listen("tcp", "198.18.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	log := &requestLog{}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.add(r.Method + " " + r.URL.Path)
			t.Logf("http: %s %s %s", r.RemoteAddr, r.Method, r.URL.Path)
			path, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			http.ServeFile(w, r, path)
		}),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return log
}

// checkTFTP fetches undionly.kpxe from dnsmasq with tftp-hpa's client and
// checks it against the image and its sha256 sidecar.
func checkTFTP(t *testing.T, ns *Netns, image string) {
	t.Helper()
	got := filepath.Join(t.TempDir(), "undionly.kpxe")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := ns.Run(ctx, "tftp", "-m", "binary", "198.18.0.1", "-c", "get", "undionly.kpxe", got); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("TFTP got %d bytes, not the %d of %s", len(a), len(b), image)
	}
	sidecar, err := os.ReadFile(image + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(a)
	if string(sidecar) != hex.EncodeToString(sum[:]) {
		t.Errorf("%s.sha256 = %q, want %x", image, sidecar, sum)
	}
}

// TestNetnsProcess checks the fast parts of the harness: a veth pair
// joining two namespaces, sockets made inside them from Go, and a process
// whose group is killed.
func TestNetnsProcess(t *testing.T) {
	Require(t, "root", "ip", "busybox")
	server := NewNetns(t, "server")
	client := NewNetns(t, "client")
	server.VethPair(t, client, "veth0", "198.18.1.1/24", "veth1", "198.18.1.2/24")

	ln, err := server.Listen("tcp", "198.18.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "ping\n")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo across the veth pair: %q, %v", buf, err)
	}

	// A process that leaves a child behind and exits 3.
	p := client.Start(t, "busybox", "sh", "-c", "sleep 600 & echo child $!; echo bye >&2; exit 3")
	line, err := p.WaitForLine(ctx, regexp.MustCompile(`^child \d+$`))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.Fields(line)[1])
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`^bye$`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exit error %v, want exit status 3", err)
	}
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`never`)); err == nil {
		t.Error("WaitForLine after exit: no error")
	}
	// The child, left in the group, was killed when its parent exited.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil && !zombie(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of an exited process still runs", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// zombie reports whether pid has exited and awaits its reaper.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
