package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The boot network every netboot test builds inside its own namespace
// (labsite): a bridge at bootServerIP, where applianced serves its API,
// DHCP, TFTP and boot HTTP, and to which VMs (taps) and other hosts
// (namespaces joined by veth pairs) are attached.
const (
	bootBridge   = labsite.Bridge
	bootServerIP = labsite.ServerIP
	bootAPIAddr  = labsite.APIAddr
	bootHTTPAddr = labsite.BootAddr
)

// bootNetConfig says how applianced serves the boot network.
type bootNetConfig struct {
	// Proxy runs applianced with -dhcp-proxy: boot information only,
	// addresses from another DHCP server.
	Proxy bool
}

// bootNet is one applianced serving the boot network of a namespace: a
// labsite.Site with the netboot tests' helpers. Everything it starts goes
// away when the test ends, passed or failed.
type bootNet struct {
	t    *testing.T
	site *labsite.Site
	ns   *lab.Netns
	imgs lab.Images
	proc *lab.Process // applianced
	api  *client.Client
}

// newBootNet builds the boot network and starts applianced on it, and
// returns once the node leads its single-node cluster (only the leader
// answers DHCP).
func newBootNet(t *testing.T, cfg bootNetConfig) *bootNet {
	t.Helper()
	site := labsite.Start(t, labsite.Config{Applianced: applianced(t), Images: lab.BuildImages(t), Proxy: cfg.Proxy})
	return &bootNet{t: t, site: site, ns: site.NS, imgs: site.Images, proc: site.Process(), api: site.API}
}

// waitFor polls cond every 100ms until it returns nil, failing the test
// with cond's last error after timeout.
func (b *bootNet) waitFor(timeout time.Duration, what string, cond func() error) {
	b.t.Helper()
	if err := labsite.Poll(b.t.Context(), timeout, cond); err != nil {
		b.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// apply runs `outpost apply -f` on yaml inside the namespace, as an
// operator would, and fails the test unless it succeeds.
func (b *bootNet) apply(yaml string) {
	b.t.Helper()
	f := filepath.Join(b.t.TempDir(), "site.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		b.t.Fatal(err)
	}
	out := b.outpost("apply", "-f", f)
	b.t.Logf("outpost apply:\n%s", strings.TrimSpace(out))
}

// outpost runs the operator CLI inside the namespace against the
// appliance and returns its output.
func (b *bootNet) outpost(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.t.Context(), 60*time.Second)
	defer cancel()
	args = append([]string{"--server", labsite.APIURL, "--ca-file", b.site.CAFile(), "--token", b.site.Token}, args...)
	out, err := b.ns.Run(ctx, outpostCLI(b.t), args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

// bootSite is what the netboot tests configure: one subnet on the bridge,
// the test installer image and the machines.
type bootSite struct {
	// LeaseSeconds is the subnet's lease time; 0 for the default.
	LeaseSeconds int
	Machines     []bootMachine
}

// bootMachine is a machine with one boot interface.
type bootMachine struct {
	ID, MAC, IP string // IP "" reserves no address
	State       store.MachineState
}

// bootSiteYAML is spec as a file for `outpost apply`. The installer is the
// test kernel and initrd; panic=-1 turns a kernel panic into a reboot,
// which ends QEMU at once (-no-reboot) rather than at the test's timeout.
func bootSiteYAML(spec bootSite) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `kind: subnet
name: lab
cidr: 198.18.0.0/24
gateway: %s
pools:
- start: 198.18.0.100
  end: 198.18.0.150
discovery: true
`, bootServerIP)
	if spec.LeaseSeconds > 0 {
		fmt.Fprintf(&sb, "lease_seconds: %d\n", spec.LeaseSeconds)
	}
	sb.WriteString(`---
kind: image
name: installer
type: installer
kernel: vmlinuz
initrd: test-initrd.img
cmdline: panic=-1 ` + lab.GuestKernelArgs + `
`)
	sb.WriteString(`---
kind: template
name: boot-test
description: never runs; the test initrd has no agent
actions:
- {name: noop, type: exec, args: {command: "true"}}
`)
	for _, m := range spec.Machines {
		fmt.Fprintf(&sb, "---\nkind: machine\nid: %s\nhostname: %s\nstate: %s\ninterfaces:\n- name: eth0\n  mac: %q\n  boot: true\n",
			m.ID, m.ID, m.State, m.MAC)
		if m.IP != "" {
			fmt.Fprintf(&sb, "  ip: %s\n  subnet: lab\n", m.IP)
		}
		// The installer boots for a workflow.
		if m.State == store.StateProvisioning {
			fmt.Fprintf(&sb, "---\nkind: workflow\nid: wf-%s\nmachine_id: %s\ntemplate: boot-test\n", m.ID, m.ID)
		}
	}
	return sb.String()
}

// attachHost attaches a host to the boot network (labsite.AttachHost).
func (b *bootNet) attachHost(name, mac, cidr string) *lab.Netns {
	b.t.Helper()
	return b.site.AttachHost(b.t, name, mac, cidr)
}

// startVM starts a VM on a new tap of the bridge. QEMU ends when the guest
// powers off or reboots.
func (b *bootNet) startVM(cfg lab.VMConfig) *lab.VM {
	b.t.Helper()
	cfg.NoReboot = true
	return b.site.StartVM(b.t, cfg)
}

// bootOK matches the line the test initrd prints once the kernel and
// initrd the appliance served are running.
var bootOK = regexp.MustCompile(`OUTPOST-BOOT-OK outpost\.machine=(\S*) outpost\.mac=(\S*)`)

// bootFailed matches serial lines that say a network boot has failed for
// good (iPXE, SeaBIOS, OVMF, the kernel), so that a test fails at once
// rather than at its timeout.
var bootFailed = regexp.MustCompile(`Nothing to boot|No more network devices|No bootable device|BdsDxe: failed to load|Kernel panic`)

// waitBoot waits for the VM to print bootOK and power off, logging when
// it passed each of steps (regular expressions for serial lines, in
// order), and fails the test if a step or the marker is not seen. It
// returns the marker line.
func (b *bootNet) waitBoot(ctx context.Context, vm *lab.VM, steps ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go watchSerial(ctx, vm.Serial, cancel)
	wait := func(re *regexp.Regexp) string {
		b.t.Helper()
		line, err := vm.WaitSerial(ctx, re)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
				err = cause
			}
			b.t.Fatalf("serial console: %v", err)
		}
		b.t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), printable(line))
		return line
	}
	for _, s := range steps {
		wait(regexp.MustCompile(s))
	}
	line := wait(bootOK)
	if err := vm.Wait(ctx); err != nil {
		b.t.Errorf("QEMU after the guest's poweroff: %v", err)
	}
	b.t.Logf("%6.1fs powered off", time.Since(vm.Start).Seconds())
	return line
}

// watchSerial reads the serial console's file until ctx ends, and cancels
// ctx when a line matches bootFailed. It reads the file, not the VM's
// line feed, so that it consumes nothing waitBoot waits for.
func watchSerial(ctx context.Context, path string, cancel context.CancelCauseFunc) {
	var off int64
	var partial []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		buf := make([]byte, 64<<10)
		n, _ := f.ReadAt(buf, off)
		f.Close()
		off += int64(n)
		partial = append(partial, buf[:n]...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			if line := string(partial[:i]); bootFailed.MatchString(line) {
				cancel(fmt.Errorf("the boot failed: %q", printable(line)))
				return
			}
			partial = partial[i+1:]
		}
	}
}

// printable drops terminal escape sequences and other control characters
// from a serial line.
func printable(s string) string {
	s = ansiEscape.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|.)`)

// leases reads the lease table through the API.
func (b *bootNet) leases() ([]store.Lease, error) {
	ctx, cancel := context.WithTimeout(b.t.Context(), 10*time.Second)
	defer cancel()
	var ls []store.Lease
	err := b.api.List(ctx, "leases", &ls)
	return ls, err
}

// waitLease waits until the lease table holds a lease for mac that check
// accepts (nil: any), and returns it.
func (b *bootNet) waitLease(mac string, check func(store.Lease) error) store.Lease {
	b.t.Helper()
	var got store.Lease
	b.waitFor(20*time.Second, "a lease for "+mac, func() error {
		ls, err := b.leases()
		if err != nil {
			return err
		}
		var errs []error
		for _, l := range ls {
			if l.MAC != mac {
				continue
			}
			if check != nil {
				if err := check(l); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", l.IP, err))
					continue
				}
			}
			got = l
			return nil
		}
		if len(errs) == 0 {
			return fmt.Errorf("no lease for %s among %d", mac, len(ls))
		}
		return errors.Join(errs...)
	})
	return got
}

// logLines returns applianced's log lines (stderr) that match re.
func (b *bootNet) logLines(re *regexp.Regexp) []string {
	b.t.Helper()
	f, err := os.Open(b.proc.Stderr)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if re.MatchString(sc.Text()) {
			out = append(out, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		b.t.Fatal(err)
	}
	return out
}

// waitLog waits until applianced has logged a line matching each of res,
// and fails the test otherwise.
func (b *bootNet) waitLog(timeout time.Duration, res ...string) {
	b.t.Helper()
	for _, s := range res {
		re := regexp.MustCompile(s)
		b.waitFor(timeout, "applianced to log "+s, func() error {
			if len(b.logLines(re)) == 0 {
				return errors.New("no such line yet")
			}
			return nil
		})
	}
}

// assertSentWhole fails t unless applianced logged a complete TFTP
// transfer of file (local, of the artifact directory) to client ip.
func assertSentWhole(t *testing.T, b *bootNet, file, ip string) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(file)
	sent := b.logLines(regexp.MustCompile(`msg="tftp: sent" .*client=` + regexp.QuoteMeta(ip) +
		`:\d+ file=` + regexp.QuoteMeta(name) + ` bytes=` + strconv.FormatInt(fi.Size(), 10) + ` `))
	if len(sent) == 0 {
		t.Errorf("applianced logged no complete TFTP transfer of %s (%d bytes) to %s", name, fi.Size(), ip)
	}
}
