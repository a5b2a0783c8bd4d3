// Command outpost-demo shows Outpost's main job on one machine: it starts
// central, and a site (a single-node appliance in a network namespace lab)
// that connects out to it, and places an order at central that provisions
// a QEMU VM behind a BMC simulator end to end: the order reaches the site,
// the appliance powers the VM on over IPMI, and it network-boots the
// in-memory installer, whose workflow streams the image to disk and
// boots the installed OS with kexec, which reads its metadata. Every step is
// printed as it happens. The APIs are reachable from the host while it
// runs; Ctrl-C removes every namespace, VM and process it started, and
// keeps their logs in a directory it names. `make run` runs it.
//
// It needs root (network namespaces, taps), QEMU, ipmi_sim, and the boot
// artifacts `make images` builds; without them it says exactly what is
// missing.
//
// The boot artifacts `make images` builds take the operator's path: the
// demo publishes the installer's kernel and initrd and the test OS image
// to central (each verified there against its .sha256 sidecar), puts the
// site's images at central naming them by digest, and the site's leader
// pulls them from central into its artifact store before the order that
// needs them starts (the order waits, saying so, until they are there).
// Only the iPXE binaries stay files in the site's artifact directory
// (images/out): the firmware fetches them over TFTP before anything
// else, and the site serves them from there.
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
	"unicode/utf8"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/internal/pki"
)

func main() {
	self, _ := os.Executable()
	applianced := flag.String("applianced", filepath.Join(filepath.Dir(self), "applianced"), "the applianced binary")
	centrald := flag.String("centrald", filepath.Join(filepath.Dir(self), "centrald"), "the centrald binary")
	listen := flag.String("api", "127.0.0.1:7080", "host address where the demo exposes the appliance's API")
	centralAddr := flag.String("central", "127.0.0.1:7443", "host address of central's API")
	exit := flag.Bool("exit", false, "exit once the VM is provisioned, rather than wait for Ctrl-C")
	flag.Parse()

	if missing := preflight(*applianced, *centrald); len(missing) > 0 {
		fmt.Fprintln(os.Stderr, "outpost-demo cannot run here; missing:")
		for _, m := range missing {
			fmt.Fprintln(os.Stderr, "  -", m)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := lab.NewRunner(ctx, "demo", os.Stdout)
	logs, err := r.KeepLogs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "outpost-demo:", err)
		os.Exit(1)
	}
	err = r.Run(func(t lab.T) { demo(t, binaries{*applianced, *centrald}, *listen, *centralAddr, logs, *exit) })
	fmt.Println("demo: cleaned up every namespace, VM and process it started")
	fmt.Println("demo: their logs (stdout, stderr, the VM's serial console) are kept in", logs)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "outpost-demo:", err)
		os.Exit(1)
	}
}

// preflight says what the demo needs and does not have.
func preflight(applianced, centrald string) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root: network namespaces and taps need it (run as root, e.g. sudo make run)")
	}
	for _, c := range []struct{ cmd, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"}, {"ip", "iproute2"}, {"ipmi_sim", "openipmi"}, {"ipmitool", "ipmitool"},
	} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s: apt-get install %s", c.cmd, c.pkg))
		}
	}
	if _, err := os.Stat("/usr/lib/ipxe/qemu/efi-virtio.rom"); err != nil {
		missing = append(missing, "/usr/lib/ipxe/qemu/efi-virtio.rom (QEMU's iPXE NIC ROM): apt-get install ipxe-qemu")
	}
	for _, bin := range []string{applianced, centrald} {
		if _, err := os.Stat(bin); err != nil {
			missing = append(missing, bin+": build it with make build")
		}
	}
	return missing
}

const (
	vmMAC    = "52:54:00:de:00:01"
	hostname = "demo-1"
)

func demo(t lab.T, bins binaries, listen, centralAddr, logs string, exit bool) {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Printf("%6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	say("building the boot artifacts (make images)")
	imgs := lab.BuildImages(t)
	say("starting central on %s", centralAddr)
	cen := labsite.StartCentral(t, bins.centrald, centralAddr, "-log-level", "info")
	credFile := cen.NewSite(siteID)

	say("starting the appliance in a network namespace, on bridge %s at %s", labsite.Bridge, labsite.ServerIP)
	s := labsite.Start(t, labsite.Config{Applianced: bins.applianced, Images: imgs, LogLevel: "info"})
	apiURL := exposeAPI(t, s, listen)
	caPEM, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatalf("the site's API CA: %v", err)
	}
	caFingerprint, err := pki.PEMFingerprint(caPEM)
	if err != nil {
		t.Fatalf("the site's API CA: %v", err)
	}
	// The appliance dials out to central, from its namespace.
	link := lab.StartFaultProxyIn(t, s.NS, "127.0.0.1:0", centralAddr)
	s.Reconfigure(t, cen.SyncArgs("http://"+link.Addr, siteID, credFile)...)
	say("the site reaches central over plain ws:// on loopback (-insecure-central): the site's credential and the BMC password cross the link in the clear. " +
		"For this lab only: a central on a network address serves wss:// with its own API CA, which a real site pins (-central-ca-fingerprint, printed by centrald)")
	s.Put(t, labsite.Network()...)
	say("the site's artifact directory (%s) serves only the iPXE binaries, over TFTP: the firmware needs them before anything else", imgs.Dir)

	say("starting the machine's BMC (ipmi_sim): powering on starts the VM, an empty 256 MiB disk, network boot first")
	args, serial := lab.VMCommand(t, lab.VMConfig{Tap: s.NewTap(t), MAC: vmMAC, MemoryMB: 1024,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	bmc := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "demo-bmc", Netns: s.NS, StartArgs: args})

	fmt.Printf(`
  Outpost is up: central, and one site (a single-node appliance) connected to it.
    central API:  http://%s   admin token: %s
    portal:       http://%s/   central's web portal: sign in with central's admin token
    site API:     %s   (inside the lab: %s)   admin token: %s
                  HTTPS from the site's API CA %s (PEM: %s)
    try:          bin/outpost -server %s --ca-fingerprint %s -token %s get workflows
    web console:  %s/   sign in with the site's admin token: %s
    logs:         %s
  Publishing the boot artifacts to central, and placing an order at central: provision machine %q (MAC %s, BMC %s) with the test OS as %q.
  Ctrl-C stops the demo and removes everything it started but the logs.

`, centralAddr, cen.Token, centralAddr, apiURL, labsite.APIURL, s.Token, caFingerprint, s.CAFile(), apiURL, caFingerprint, s.Token, apiURL, s.Token, logs,
		"demo", vmMAC, bmc.Addr, hostname)

	ctx := t.Context()
	go followEvents(ctx, s, say)
	put := func(path string, obj any) {
		if err := cen.Do("PUT", path, obj, nil); err != nil {
			t.Fatalf("central: %v", err)
		}
	}
	put("/v1/sites/"+siteID+"/machines/demo", map[string]any{
		"id": "demo", "hostname": "demo", "arch": "x86_64",
		"interfaces": []map[string]any{{"name": "eth0", "mac": vmMAC, "boot": true}},
		"bmc":        map[string]any{"address": bmc.Addr, "driver": "ipmi", "username": bmc.Username, "password": bmc.Password},
	})
	// The order follows the images at once, as an operator's may: it
	// waits at the site if the site has not pulled its artifacts yet.
	pub := publish(t, cen, imgs, say)
	go followArtifacts(ctx, s, cen, pub, say)
	put("/v1/sites/"+siteID+"/orders/demo-install", map[string]any{
		"action": "provision", "machine_id": "demo", "template": labsite.TemplateName, "image": labsite.TestOSName,
		"values": map[string]string{"hostname": hostname},
	})
	vmStart := time.Now()
	done := make(chan string, 1)
	go followSerial(ctx, serial, say, done)

	select {
	case line := <-done:
		say("provisioned in %.1fs from the order: the VM booted its disk and says: %s", time.Since(vmStart).Seconds(), line)
	case <-ctx.Done():
		return
	}
	if stored, err := cen.StoredSeq(siteID); err == nil {
		say("central has the site's events up to %d", stored)
	}
	if exit {
		return
	}
	fmt.Println("\n  The demo keeps running so you can look around; Ctrl-C to stop.")
	<-ctx.Done()
}

const siteID = "demo"

// binaries are the programs the demo runs.
type binaries struct{ applianced, centrald string }

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
	// The API serves HTTPS (its address in the lab is not loopback); the
	// forward carries TLS through, and the certificate names 127.0.0.1.
	return "https://" + ln.Addr().String()
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

// publish uploads the installer and the test OS image of `make images`
// to central and puts the site's images naming them there.
func publish(t lab.T, cen *labsite.Central, imgs lab.Images, say func(string, ...any)) labsite.Published {
	var size int64
	for _, f := range []string{imgs.Kernel, imgs.InstallerInitrd, imgs.TestOSGz} {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	say("publishing the boot artifacts to central (%s): the installer's kernel and initrd, the test OS image; central checks each against the sha256 make images wrote", mib(size))
	pub := labsite.PublishImages(t, cen, siteID, imgs)
	say("central holds them, and the site's images %s and %s name them by digest: the site's leader pulls each from central once",
		labsite.InstallerName, labsite.TestOSName)
	return pub
}

// followArtifacts prints each published artifact once the site holds
// it, and the order's wait for them if it is seen waiting.
func followArtifacts(ctx context.Context, s *labsite.Site, cen *labsite.Central, pub labsite.Published, say func(string, ...any)) {
	names := map[string]string{}
	for _, a := range pub.Artifacts {
		names[a.SHA256] = a.Name
	}
	waited := false
	for ctx.Err() == nil && (len(names) > 0 || waited) {
		var recs []artifacts.Record
		if err := s.API.List(ctx, "artifacts", &recs); err == nil {
			for _, r := range recs {
				if name, ok := names[r.SHA256]; ok && r.State == artifacts.StatePresent {
					delete(names, r.SHA256)
					say("the site pulled %s (%s, %s) from %s", name, shortRef(r.SHA256), mib(r.Size), pulledFrom(cen, r.SHA256))
				}
			}
		}
		var o store.Order
		if err := s.API.Get(ctx, "orders", "demo-install", &o); err == nil {
			switch {
			case o.Waiting() && !waited:
				waited = true
				say("the order waits at the site: %s", o.Reason)
			case !o.Waiting() && waited:
				waited = false
				say("the order no longer waits: its artifacts are at the site (%s)", o.State)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pulledFrom says where the site got digest from: central, if central
// sent the site its bytes.
func pulledFrom(cen *labsite.Central, digest string) string {
	var a cclient.Artifact
	if err := cen.Do("GET", "/v1/artifacts/"+digest, nil, &a); err != nil {
		return "an unknown source"
	}
	for _, st := range a.Sites {
		if st.Site == siteID && st.SentBytes >= a.Size {
			return "central"
		}
	}
	return "somewhere other than central"
}

// shortRef writes a digest as the site's messages do.
func shortRef(d string) string { return store.DigestPrefix + d[:12] + "…" }

// mib writes a size in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// milestones are the serial console lines worth showing.
var milestones = regexp.MustCompile(`iPXE initialising|Outpost: |outpost-installer: (network up|starting agent)|OUTPOST-TESTOS-BOOTED|Booting from Hard Disk|SYSLINUX`)

var testOS = regexp.MustCompile(`OUTPOST-TESTOS hostname=\S+.*`)

// followSerial prints the VM console's milestones, and sends the test
// OS's line on done.
func followSerial(ctx context.Context, path string, say func(string, ...any), done chan<- string) {
	var off int64
	var console consoleLines
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
		for _, l := range console.add(b) {
			if m := testOS.FindString(l); m != "" {
				say("vm     %s", m)
				done <- m
				return
			}
			if milestones.MatchString(l) {
				say("vm     %s", l)
			}
		}
	}
}

// biosColumns is the width of the firmware's text console: SeaBIOS shows
// it on the serial port as an 80-column screen, so a longer line, such as
// an iPXE script's echo, reaches the serial console broken after 80
// columns (with CR LF). The Linux kernel and the installed OS write to
// the serial port directly, unbroken.
const biosColumns = 80

// consoleLines cuts the VM console's output into lines without carriage
// returns or terminal control sequences, and joins again the lines the
// firmware broke at biosColumns. (A line of exactly 80 columns that was
// not broken is joined with the next one too: these lines are shown, not
// parsed.)
type consoleLines struct {
	partial string // the output after the last newline
	broken  string // lines broken at biosColumns, waiting for their rest
}

// add takes more output and returns the lines it completes.
func (c *consoleLines) add(b []byte) []string {
	lines := strings.Split(c.partial+string(b), "\n")
	c.partial = lines[len(lines)-1]
	var out []string
	for _, l := range lines[:len(lines)-1] {
		l = printable(l)
		if utf8.RuneCountInString(l) == biosColumns {
			c.broken += l
			continue
		}
		out = append(out, strings.TrimSpace(c.broken+l))
		c.broken = ""
	}
	return out
}

// controlSeq is a terminal control sequence: CSI (ESC [ ... letter), or
// ESC and one character, such as ESC c (reset).
var controlSeq = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b[^\[]`)

// printable drops terminal control sequences and control characters
// (carriage returns among them) from a console line.
func printable(s string) string {
	s = controlSeq.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return -1
		}
		return r
	}, s)
}
