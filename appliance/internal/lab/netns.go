package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// nsPrefix starts the name of every namespace the lab creates; the names
// end in "-<pid>-<seq>" of the test binary that owns them.
const nsPrefix = "outpost-lab-"

var nsSeq atomic.Uint64

// Netns is a network namespace created for one test and deleted, with
// everything still running inside it, when that test ends.
type Netns struct {
	// Name is the namespace's name as ip netns list shows it: unique
	// across tests, test binaries and parallel runs.
	Name string
	t    T
}

// NewNetns creates a namespace with its loopback up. The name given is
// only part of the real one (Netns.Name), which also carries a hash of the
// test's name, the test binary's pid and a sequence number.
func NewNetns(t T, name string) *Netns {
	t.Helper()
	Require(t, "root", "ip")
	sweepOnce.Do(func() { sweepStale(t) })
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	n := &Netns{
		Name: fmt.Sprintf("%s%s-%08x-%d-%d", nsPrefix, sanitize(name), h.Sum32(), os.Getpid(), nsSeq.Add(1)),
		t:    t,
	}
	if out, err := ipCommand("netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("lab: ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if err := n.delete(); err != nil {
			t.Error(err)
		}
	})
	n.ip("link", "set", "lo", "up")
	return n
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.]+`)

func sanitize(name string) string {
	s := unsafeName.ReplaceAllString(name, "_")
	if len(s) > 24 {
		s = s[:24]
	}
	return s
}

// delete kills what still runs in the namespace and removes it. The
// namespace itself lives on until its last process has exited.
func (n *Netns) delete() error {
	for range 50 {
		pids := n.pids()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := ipCommand("netns", "del", n.Name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip netns del %s: %v: %s", n.Name, err, out)
	}
	return nil
}

// pids lists the processes inside the namespace.
func (n *Netns) pids() []int {
	out, err := ipCommand("netns", "pids", n.Name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

var sweepOnce sync.Once

// sweepStale deletes the lab namespaces of test binaries that no longer
// run (killed before their cleanup), with whatever runs inside them.
func sweepStale(t T) {
	out, err := ipCommand("netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		parts := strings.Split(f[0], "-")
		if len(parts) < 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its owner still runs
		}
		stale := &Netns{Name: f[0], t: t}
		if err := stale.delete(); err == nil {
			t.Logf("lab: deleted stale namespace %s", f[0])
		}
	}
}

// Command returns a command that runs name inside the namespace through
// ip netns exec. name is looked up in PATH and the sbin directories.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return n.CommandContext(context.Background(), name, args...)
}

// CommandContext is Command bound to ctx, as exec.CommandContext.
func (n *Netns) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	if p, err := lookPath(name); err == nil {
		name = p
	}
	return exec.CommandContext(ctx, ipPath(), append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// ipPath is where iproute2's ip is.
func ipPath() string {
	if p, err := lookPath("ip"); err == nil {
		return p
	}
	return "ip"
}

func ipCommand(args ...string) *exec.Cmd { return exec.Command(ipPath(), args...) }

// Run runs a short command inside the namespace and returns its combined
// output; the error includes the output.
func (n *Netns) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab: %s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, out)
	}
	return string(out), nil
}

// ip runs ip -n NAME args, failing the test on an error.
func (n *Netns) ip(args ...string) {
	n.t.Helper()
	out, err := ipCommand(append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("lab: ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
}

// Bridge creates a bridge (no STP, no forwarding delay, no multicast
// snooping: every port sees all multicast) with address cidr
// ("198.18.0.1/24"; "" for none) and brings it up.
func (n *Netns) Bridge(name, cidr string) {
	n.t.Helper()
	n.ip("link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	if cidr != "" {
		n.AddAddr(name, cidr)
	}
	n.ip("link", "set", name, "up")
}

// AddAddr gives the link dev (a bridge made without one, say) the
// address cidr ("198.18.0.1/24").
func (n *Netns) AddAddr(dev, cidr string) {
	n.t.Helper()
	n.ip("addr", "add", cidr, "dev", dev)
}

// Tap creates a tap device for one VM, enslaves it to bridge and brings
// it up. Its carrier comes up when QEMU opens it.
func (n *Netns) Tap(name, bridge string) {
	n.t.Helper()
	Require(n.t, "/dev/net/tun")
	n.ip("tuntap", "add", "dev", name, "mode", "tap")
	n.ip("link", "set", name, "master", bridge, "up")
}

// VethPair joins n and other with a veth pair: aName with address aCIDR
// in n, bName with bCIDR in other ("" for no address), both up: two hosts
// joined by a cable, such as a DHCP load generator and a server. Give both
// ends an address in one subnet (198.18.0.1/16 and 198.18.0.2/16). The
// pair goes away with either namespace.
func (n *Netns) VethPair(t T, other *Netns, aName, aCIDR, bName, bCIDR string) {
	t.Helper()
	n.ip("link", "add", aName, "type", "veth", "peer", "name", bName, "netns", other.Name)
	if aCIDR != "" {
		n.ip("addr", "add", aCIDR, "dev", aName)
	}
	if bCIDR != "" {
		other.ip("addr", "add", bCIDR, "dev", bName)
	}
	n.ip("link", "set", aName, "up")
	other.ip("link", "set", bName, "up")
}

// Do runs f on an OS thread that has entered the namespace, and returns
// its error. Sockets f opens belong to the namespace for good and can be
// used from any goroutine afterwards; goroutines f starts do not run in
// the namespace, and neither do the Go resolver's: use IP literals.
func (n *Netns) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked, and so dies with this goroutine, unless
		// it is back in its own namespace.
		runtime.LockOSThread()
		back, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("lab: %w", err)
			return
		}
		defer back.Close()
		target, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			errc <- fmt.Errorf("lab: %w", err)
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			errc <- fmt.Errorf("lab: enter %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := setns(back); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

func setns(f *os.File) error {
	_, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// Listen is net.Listen inside the namespace.
func (n *Netns) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket is net.ListenPacket inside the namespace.
func (n *Netns) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// DialContext is net.Dialer.DialContext from inside the namespace.
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections are made inside the
// namespace.
func (n *Netns) HTTPClient() *http.Client { return n.HTTPSClient(nil) }

// HTTPSClient is HTTPClient verifying servers with tc (an API's pinned
// CA: pki.PinnedTLS).
func (n *Netns) HTTPSClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			DialContext:       n.DialContext,
			DisableKeepAlives: true,
			TLSClientConfig:   tc,
		},
	}
}
