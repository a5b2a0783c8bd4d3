package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The boot network every netboot test builds inside its own namespace: a
// bridge at bootServerIP, where applianced serves its API, DHCP, TFTP and
// boot HTTP, and to which VMs (taps) and other hosts (namespaces joined by
// veth pairs) are attached.
const (
	bootBridge   = "br0"
	bootServerIP = "198.18.0.1"
	bootAPIAddr  = bootServerIP + ":7080"
	bootHTTPAddr = bootServerIP + ":8080"
	bootTFTPAddr = bootServerIP + ":69"
)

// bootNetConfig says how applianced serves the boot network.
type bootNetConfig struct {
	// Proxy runs applianced with -dhcp-proxy: boot information only,
	// addresses from another DHCP server.
	Proxy bool
}

// bootNet is one applianced serving the boot network of a namespace.
// Everything it starts goes away when the test ends, passed or failed.
type bootNet struct {
	t         *testing.T
	ns        *lab.Netns
	imgs      lab.Images
	dataDir   string
	tokenFile string
	proc      *lab.Process // applianced
	api       *client.Client
	hosts     int // namespaces attached so far
	taps      int // taps created so far
}

// newBootNet builds the boot network and starts applianced on it, and
// returns once the node leads its single-node cluster (only the leader
// answers DHCP).
func newBootNet(t *testing.T, cfg bootNetConfig) *bootNet {
	t.Helper()
	bin := applianced(t)
	imgs := lab.BuildImages(t)
	lab.Require(t, "root", "ip")

	ns := lab.NewNetns(t, "boot")
	ns.Bridge(bootBridge, bootServerIP+"/24")
	// iPXE configures IPv6 alongside DHCPv4 and, with no router on the
	// link, waits ~15 s for router advertisements before it boots.
	ns.AnswerRouterSolicitations(t, bootBridge)

	dir := t.TempDir()
	b := &bootNet{
		t:         t,
		ns:        ns,
		imgs:      imgs,
		dataDir:   filepath.Join(dir, "n1"),
		tokenFile: filepath.Join(dir, "n1", "admin.token"),
	}
	args := []string{bin,
		"-id", "n1",
		"-data-dir", b.dataDir,
		"-api-addr", bootAPIAddr,
		"-raft-addr", "127.0.0.1:7081", // the namespace's own loopback
		"-dhcp-interface", bootBridge,
		"-boot-addr", bootHTTPAddr,
		"-tftp-addr", bootTFTPAddr,
		"-artifact-dir", imgs.Dir,
		"-log-level", "debug",
	}
	if cfg.Proxy {
		args = append(args, "-dhcp-proxy")
	}
	b.proc = lab.StartProcess(t, lab.ProcessConfig{Name: "applianced", Netns: ns, Args: args})
	b.api = client.NewWithHTTP("http://"+bootAPIAddr, b.waitToken(), ns.HTTPClient())
	b.waitLeader()
	return b
}

// waitToken waits for the first admin token and returns it.
func (b *bootNet) waitToken() string {
	b.t.Helper()
	var token string
	b.waitFor(60*time.Second, "the admin token", func() error {
		select {
		case <-b.proc.Exited():
			return fmt.Errorf("applianced exited: %v", b.proc.Err())
		default:
		}
		raw, err := os.ReadFile(b.tokenFile)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(string(raw), "\n") {
			return errors.New("token file not complete yet")
		}
		token = strings.TrimSpace(string(raw))
		return nil
	})
	return token
}

// waitLeader waits until the node leads its cluster.
func (b *bootNet) waitLeader() {
	b.t.Helper()
	b.waitFor(60*time.Second, "applianced to lead", func() error {
		ctx, cancel := context.WithTimeout(b.t.Context(), 5*time.Second)
		defer cancel()
		st, err := b.api.Cluster(ctx)
		if err != nil {
			return err
		}
		if st.LeaderID != "n1" {
			return fmt.Errorf("leader %q", st.LeaderID)
		}
		return nil
	})
}

// waitFor polls cond every 100ms until it returns nil, failing the test
// with cond's last error after timeout.
func (b *bootNet) waitFor(timeout time.Duration, what string, cond func() error) {
	b.t.Helper()
	if err := bootPoll(b.t.Context(), timeout, cond); err != nil {
		b.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// bootPoll calls cond every 100ms until it returns nil, ctx ends or timeout
// passes, and returns cond's last error in the latter cases.
func bootPoll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
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
	args = append([]string{"--server", "http://" + bootAPIAddr, "--token-file", b.tokenFile}, args...)
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
cmdline: panic=-1
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

// attachHost creates a namespace joined to the bridge by a veth pair: its
// end is ifname, with address mac and, unless cidr is "", that address.
// It is one more host on the boot network's link.
func (b *bootNet) attachHost(name, ifname, mac, cidr string) *lab.Netns {
	b.t.Helper()
	b.hosts++
	host := lab.NewNetns(b.t, name)
	peer := fmt.Sprintf("vh%d", b.hosts)
	b.ns.VethPair(b.t, host, peer, "", ifname, "")
	b.ip(b.ns, "link", "set", peer, "master", bootBridge)
	b.ip(host, "link", "set", ifname, "down")
	b.ip(host, "link", "set", ifname, "address", mac)
	if cidr != "" {
		b.ip(host, "addr", "add", cidr, "dev", ifname)
	}
	b.ip(host, "link", "set", ifname, "up")
	return host
}

// ip runs ip in ns, failing the test on an error.
func (b *bootNet) ip(ns *lab.Netns, args ...string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.t.Context(), 20*time.Second)
	defer cancel()
	if _, err := ns.Run(ctx, "ip", args...); err != nil {
		b.t.Fatal(err)
	}
}

// startVM starts a VM on a new tap of the bridge. QEMU ends when the guest
// powers off or reboots.
func (b *bootNet) startVM(cfg lab.VMConfig) *lab.VM {
	b.t.Helper()
	b.taps++
	cfg.Tap = fmt.Sprintf("tap%d", b.taps)
	cfg.NoReboot = true
	b.ns.Tap(cfg.Tap, bootBridge)
	return lab.StartVM(b.t, b.ns, cfg)
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

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// outpostCLI returns the path of the outpost binary, building it once per
// test run next to applianced.
func outpostCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() { cliPath, cliErr = buildCommand("./appliance/cmd/outpost", "outpost") })
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// buildCommand builds the command at pkg (relative to the module root)
// into binDir as name.
func buildCommand(pkg, name string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("e2e: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("e2e: not inside a Go module")
	}
	bin := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("e2e: build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}
