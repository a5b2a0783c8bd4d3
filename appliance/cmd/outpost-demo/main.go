// Command outpost-demo shows Outpost's main job on one machine: it starts
// a single-node appliance in a network namespace lab, and provisions a
// QEMU VM end to end (PXE, the in-memory installer and its workflow, the
// image streamed to disk, the reboot into the installed OS, which reads
// its metadata), printing each step as it happens. The API is reachable
// from the host while it runs; Ctrl-C removes every namespace, VM and
// process it started. `make run` runs it.
//
// It needs root (network namespaces, taps), QEMU, and the boot artifacts
// `make images` builds; without them it says exactly what is missing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

func main() {
	self, _ := os.Executable()
	applianced := flag.String("applianced", filepath.Join(filepath.Dir(self), "applianced"), "the applianced binary")
	listen := flag.String("api", "127.0.0.1:7080", "host address where the demo exposes the appliance's API")
	exit := flag.Bool("exit", false, "exit once the VM is provisioned, rather than wait for Ctrl-C")
	flag.Parse()

	if missing := preflight(*applianced); len(missing) > 0 {
		fmt.Fprintln(os.Stderr, "outpost-demo cannot run here; missing:")
		for _, m := range missing {
			fmt.Fprintln(os.Stderr, "  -", m)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := lab.NewRunner(ctx, "demo", os.Stdout)
	err := r.Run(func(t lab.T) { demo(t, *applianced, *listen, *exit) })
	fmt.Println("demo: cleaned up every namespace, VM and process it started")
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "outpost-demo:", err)
		os.Exit(1)
	}
}

// preflight says what the demo needs and does not have.
func preflight(applianced string) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root: network namespaces and taps need it (run as root, e.g. sudo make run)")
	}
	for _, c := range []struct{ cmd, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"}, {"ip", "iproute2"},
	} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s: apt-get install %s", c.cmd, c.pkg))
		}
	}
	if _, err := os.Stat("/usr/lib/ipxe/qemu/efi-virtio.rom"); err != nil {
		missing = append(missing, "/usr/lib/ipxe/qemu/efi-virtio.rom (QEMU's iPXE NIC ROM): apt-get install ipxe-qemu")
	}
	if _, err := os.Stat(applianced); err != nil {
		missing = append(missing, applianced+": build it with make build")
	}
	return missing
}

const (
	vmMAC    = "52:54:00:de:00:01"
	hostname = "demo-1"
)

func demo(t lab.T, applianced, listen string, exit bool) {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Printf("%6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	say("building the boot artifacts (make images)")
	imgs := lab.BuildImages(t)
	say("starting the appliance in a network namespace, on bridge %s at %s", labsite.Bridge, labsite.ServerIP)
	s := labsite.Start(t, labsite.Config{Applianced: applianced, Images: imgs, LogLevel: "info"})
	apiURL := exposeAPI(t, s, listen)

	s.Put(t, labsite.Provisioning(t, imgs)...)
	s.Put(t, labsite.Machine("demo", vmMAC), labsite.Workflow("demo-install", "demo", labsite.TestOSName, hostname))
	fmt.Printf(`
  Outpost appliance (single node) is up.
    API:          %s   (inside the lab: http://%s)
    admin token:  %s
    try:          bin/outpost -server %s -token %s get workflows
    logs:         %s
  Provisioning machine "demo" (MAC %s) with the test OS as %q.
  Ctrl-C stops the demo and removes everything it started.

`, apiURL, labsite.APIAddr, s.Token, apiURL, s.Token, filepath.Dir(s.Process().Stdout), vmMAC, hostname)

	ctx := t.Context()
	go followEvents(ctx, s, say)
	say("starting the VM: an empty 256 MiB disk, network boot first")
	vm := s.StartVM(t, lab.VMConfig{MAC: vmMAC, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}})
	done := make(chan string, 1)
	go followSerial(ctx, vm.Serial, say, done)

	select {
	case line := <-done:
		say("provisioned in %.1fs: the VM booted its disk and says: %s", time.Since(vm.Start).Seconds(), line)
	case <-ctx.Done():
		return
	}
	if exit {
		return
	}
	fmt.Println("\n  The demo keeps running so you can look around; Ctrl-C to stop.")
	<-ctx.Done()
}

// exposeAPI forwards listen on the host to the appliance's API inside
// the lab, and returns the URL it is reachable at.
func exposeAPI(t lab.T, s *labsite.Site, listen string) string {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("expose the API on %s: %v (choose another with -api)", listen, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := s.NS.DialContext(context.Background(), "tcp", labsite.APIAddr)
				if err != nil {
					return
				}
				defer u.Close()
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				go func() { defer wg.Done(); io.Copy(c, u); c.(*net.TCPConn).CloseWrite() }()
				wg.Wait()
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// followEvents prints the site's events as they are recorded.
func followEvents(ctx context.Context, s *labsite.Site, say func(string, ...any)) {
	var since uint64
	for ctx.Err() == nil {
		err := s.API.Stream(ctx, since, func(e store.Event) error {
			since = e.Seq
			say("event  %-18s %s", e.Kind, e.Message)
			return nil
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			time.Sleep(time.Second)
		}
	}
}

// milestones are the serial console lines worth showing.
var milestones = regexp.MustCompile(`iPXE initialising|Outpost: |outpost-installer: (network up|starting agent)|OUTPOST-TESTOS-BOOTED|Booting from Hard Disk|SYSLINUX`)

var testOS = regexp.MustCompile(`OUTPOST-TESTOS hostname=\S+.*`)

// followSerial prints the VM console's milestones, and sends the test
// OS's line on done.
func followSerial(ctx context.Context, path string, say func(string, ...any), done chan<- string) {
	var off int64
	var partial string
	for ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		f.Seek(off, io.SeekStart)
		b, _ := io.ReadAll(f)
		f.Close()
		off += int64(len(b))
		lines := strings.Split(partial+string(b), "\n")
		partial = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			l = strings.TrimSpace(strings.ReplaceAll(l, "\r", ""))
			if m := testOS.FindString(l); m != "" {
				say("vm     %s", m)
				done <- m
				return
			}
			if milestones.MatchString(l) {
				say("vm     %s", printable(l))
			}
		}
	}
}

// printable drops terminal control sequences from a console line.
func printable(s string) string {
	s = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`).ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return -1
		}
		return r
	}, s)
}
