package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIPMISim proves the simulator recipe with ipmitool alone: power on
// runs StartCmd, power off kills it, power cycle from off powers on, the
// boot device is refused, a wrong password is refused, and the test's end
// kills a StartCmd still running.
func TestIPMISim(t *testing.T) {
	var leftover int
	t.Run("power", func(t *testing.T) {
		pidfile := filepath.Join(t.TempDir(), "pid")
		sim := StartIPMISim(t, IPMISimConfig{
			Name:     "labtest",
			StartCmd: fmt.Sprintf("sh -c 'echo $$ > %s; exec sleep 3600'", pidfile),
		})
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		wantState(ctx, t, sim, "off")

		run(ctx, t, sim, "chassis", "power", "on")
		pid := waitPidfile(ctx, t, pidfile)
		wantState(ctx, t, sim, "on")

		run(ctx, t, sim, "chassis", "power", "off")
		waitGone(t, pid)
		wantState(ctx, t, sim, "off")

		// Cycle from off: off (already), then on a second later.
		os.Remove(pidfile)
		run(ctx, t, sim, "chassis", "power", "cycle")
		leftover = waitPidfile(ctx, t, pidfile)
		wantState(ctx, t, sim, "on")

		// ipmitool exits 0 even so: only its output tells.
		if out, _ := sim.IPMITool(ctx, "chassis", "bootdev", "pxe"); !strings.Contains(out, "Invalid data field") {
			t.Errorf("chassis bootdev pxe: %q, want refused with Invalid data field", out)
		}
		wrong := *sim
		wrong.Password = "not" + sim.Password[:8]
		if out, err := wrong.IPMITool(ctx, "chassis", "power", "status"); err == nil {
			t.Errorf("wrong password accepted: %s", out)
		}
	})
	if leftover == 0 {
		return
	}
	// The subtest's cleanup killed ipmi_sim's group, StartCmd included.
	waitGone(t, leftover)
}

func run(ctx context.Context, t *testing.T, sim *IPMISim, args ...string) {
	t.Helper()
	if _, err := sim.IPMITool(ctx, args...); err != nil {
		t.Fatal(err)
	}
}

func wantState(ctx context.Context, t *testing.T, sim *IPMISim, want string) {
	t.Helper()
	got, err := sim.PowerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("power state %s, want %s", got, want)
	}
}

// waitPidfile waits for StartCmd to write its pid and checks it runs.
func waitPidfile(ctx context.Context, t *testing.T, path string) int {
	t.Helper()
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			if syscall.Kill(pid, 0) != nil {
				t.Fatalf("StartCmd's pid %d does not run", pid)
			}
			return pid
		}
		select {
		case <-ctx.Done():
			t.Fatalf("StartCmd wrote no pid to %s: %v", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitGone waits until pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVMCommandSerial checks the command lines: VMCommand serves the
// serial console on a telnet socket that logs to the file it returns,
// and a simulator given that command connects its serial-over-LAN to the
// socket; one with no serial console has no sol line.
func TestVMCommandSerial(t *testing.T) {
	args, serial := VMCommand(t, VMConfig{Tap: "tap0", MAC: "52:54:00:00:00:01"})
	addr := SerialAddr(args)
	if _, port, err := net.SplitHostPort(addr); err != nil || !strings.HasPrefix(addr, "127.0.0.1:") || port == "0" {
		t.Fatalf("SerialAddr = %q, want 127.0.0.1:<port>", addr)
	}
	cmd := strings.Join(args, " ")
	for _, want := range []string{
		"-chardev socket,id=serial0,host=127.0.0.1,port=" + addr[len("127.0.0.1:"):] + ",server=on,wait=off,telnet=on,logfile=" + serial + " ",
		"-serial chardev:serial0",
	} {
		if !strings.Contains(cmd, want) {
			t.Errorf("VMCommand: %q lacks %q", cmd, want)
		}
	}
	if strings.Contains(cmd, "stdio") {
		t.Errorf("VMCommand: %q still uses stdio", cmd)
	}
	if got := SerialAddr([]string{"qemu-system-x86_64", "-serial", "stdio"}); got != "" {
		t.Errorf("SerialAddr of a stdio serial = %q, want none", got)
	}

	cfg := ipmiSimDefaults(t, IPMISimConfig{StartArgs: args})
	if cfg.SOL != addr {
		t.Errorf("IPMISimConfig.SOL defaults to %q, want the VM's %q", cfg.SOL, addr)
	}
	if conf := ipmiLanConf(cfg, 623, 9000, ""); !strings.Contains(conf, "\n  sol \"telnet:"+addr+"\" 115200\n") {
		t.Errorf("lan.conf has no sol line for %s:\n%s", addr, conf)
	}
	plain := ipmiSimDefaults(t, IPMISimConfig{StartCmd: "sleep 3600"})
	if conf := ipmiLanConf(plain, 623, 9000, ""); strings.Contains(conf, "sol ") {
		t.Errorf("lan.conf of a simulator with no serial console has a sol line:\n%s", conf)
	}
}

// TestVMSerialSocket runs VMCommand's command line: what the guest prints
// reaches both the telnet socket and the file, and what a client types
// on the socket reaches the guest (the installer's console echoes it).
func TestVMSerialSocket(t *testing.T) {
	imgs := BuildImages(t)
	ns := NewNetns(t, "serial")
	ns.Bridge("br0", "")
	ns.Tap("tap0", "br0")
	args, serial := VMCommand(t, VMConfig{Tap: "tap0", Kernel: imgs.Kernel, Initrd: imgs.InstallerInitrd,
		Append: "console=ttyS0,115200 panic=-1 " + GuestKernelArgs, NoReboot: true})
	qemu := StartProcess(t, ProcessConfig{Name: "vm-serial", Netns: ns, Args: args})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	conn := dialSerial(ctx, t, ns, SerialAddr(args), qemu)
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(deadline)
	}
	var got []byte
	socket := func() string {
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("the socket: %v, after %q", err, got)
		}
		got = append(got, buf[:n]...)
		return string(got)
	}
	waitFor(ctx, t, "the socket", socket, "outpost-installer:")
	probe := "lab-serial-probe-" + strconv.Itoa(os.Getpid())
	if _, err := io.WriteString(conn, probe+"\r"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the socket", socket, probe)
	file := func() string { b, _ := os.ReadFile(serial); return string(b) }
	for _, want := range []string{"Linux version", "outpost-installer:", probe} {
		waitFor(ctx, t, serial, file, want)
	}
}

// dialSerial connects to the serial console's socket once QEMU listens.
func dialSerial(ctx context.Context, t *testing.T, ns *Netns, addr string, qemu *Process) net.Conn {
	t.Helper()
	for {
		c, err := ns.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c
		}
		select {
		case <-qemu.Exited():
			t.Fatalf("QEMU exited: %v: %s", qemu.Err(), tail(qemu.Stderr, 10))
		case <-ctx.Done():
			t.Fatalf("no serial socket at %s: %v", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitFor waits until read() holds want; read blocks, or returns what
// is there now.
func waitFor(ctx context.Context, t *testing.T, what string, read func() string, want string) {
	t.Helper()
	for !strings.Contains(read(), want) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s never showed %q; it holds:\n%s", what, want, read())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
