package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dhcpNet is the benchmark's two namespaces and the veth between them.
type dhcpNet struct {
	ip     string // iproute2's ip
	server string // namespace names
	client string
}

func newDHCPNet(ip string) (*dhcpNet, error) {
	sweepDHCPNets(ip)
	base := fmt.Sprintf("%s%d", dhcpNSPrefix, os.Getpid())
	bn := &dhcpNet{ip: ip, server: base + "-s", client: base + "-c"}
	steps := [][]string{
		{"netns", "add", bn.server},
		{"netns", "add", bn.client},
		{"-n", bn.server, "link", "set", "lo", "up"},
		{"-n", bn.client, "link", "set", "lo", "up"},
		{"-n", bn.server, "link", "add", dhcpServerIface, "type", "veth", "peer", "name", dhcpClientIface, "netns", bn.client},
		{"-n", bn.server, "addr", "add", dhcpServerAddr + dhcpPrefixLen, "dev", dhcpServerIface},
		{"-n", bn.client, "addr", "add", dhcpClientAddr + dhcpPrefixLen, "dev", dhcpClientIface},
		{"-n", bn.server, "link", "set", dhcpServerIface, "up"},
		{"-n", bn.client, "link", "set", dhcpClientIface, "up"},
	}
	for _, args := range steps {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			bn.close()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return bn, nil
}

// close kills whatever runs in the namespaces and deletes them.
func (bn *dhcpNet) close() {
	for _, ns := range []string{bn.server, bn.client} {
		deleteNetns(bn.ip, ns)
	}
}

func deleteNetns(ip, ns string) {
	for range 50 {
		out, _ := exec.Command(ip, "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, f := range pids {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	exec.Command(ip, "netns", "del", ns).Run()
}

// sweepDHCPNets deletes the namespaces of benchmark runs that no longer
// run (killed before they could clean up).
func sweepDHCPNets(ip string) {
	out, err := exec.Command(ip, "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], dhcpNSPrefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(f[0], dhcpNSPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		deleteNetns(ip, f[0])
	}
}

// dialServer dials from inside the server namespace.
func (bn *dhcpNet) dialServer(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(bn.server, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// inNetns runs f on an OS thread inside namespace ns. Sockets f makes stay
// in ns.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread dies with this goroutine unless it gets back home.
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		ferr := f()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// benchProc is a server started in a namespace, in its own process group,
// its output in a log file.
type benchProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start runs bin with args in namespace ns.
func (bn *dhcpNet) start(ns, logPath string, env []string, bin string, args ...string) (*benchProc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bn.ip, append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own group, killed with the benchmark should that die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &benchProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *benchProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after 5 s.
func (p *benchProc) stop() {
	pid := p.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}

// lastLines returns the last n lines of a file.
func lastLines(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
