package bmc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// These tests drive ipmi_sim, a real IPMI-over-LAN BMC, through bmclib and
// ipmitool. ipmi_sim's startcmd writes its pid to a file and sleeps: power
// on starts it, power off kills it.

// simPool is a pool for tests against ipmi_sim: short waits.
func simPool(t *testing.T, logs *bytes.Buffer) *Pool {
	return New(Config{Timeout: 10 * time.Second, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, Log: testLog(t, logs)})
}

// startSim starts an ipmi_sim whose startcmd records its pid in the
// returned file.
func startSim(t *testing.T, name string) (*lab.IPMISim, string) {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "pid")
	sim := lab.StartIPMISim(t, lab.IPMISimConfig{
		Name:     name,
		StartCmd: fmt.Sprintf("sh -c 'echo $$ > %s; exec sleep 3600'", pidfile),
	})
	return sim, pidfile
}

func simCreds(sim *lab.IPMISim, driver string) Credentials {
	return Credentials{Address: sim.Addr, Username: sim.Username, Password: sim.Password, Driver: driver}
}

// noPassword fails the test if any of texts holds password.
func noPassword(t *testing.T, password string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, password) {
			t.Errorf("the password appears in: %s", s)
		}
	}
}

// TestIPMISimPower: power on starts the machine (startcmd), off kills it,
// cycle from off powers on and from on restarts it; the state follows.
func TestIPMISimPower(t *testing.T) {
	sim, pidfile := startSim(t, "power")
	var logs bytes.Buffer
	p := simPool(t, &logs)
	c := simCreds(sim, IPMI)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	wantPower(ctx, t, p, c, Off)
	if err := p.PowerOn(ctx, c); err != nil {
		t.Fatal(err)
	}
	pid := waitPid(ctx, t, pidfile, 0)
	wantPower(ctx, t, p, c, On)
	if got, err := sim.PowerState(ctx); err != nil || got != "on" {
		t.Errorf("ipmitool says %q, %v; want on", got, err)
	}
	// On again: nothing happens.
	if err := p.PowerOn(ctx, c); err != nil {
		t.Fatal(err)
	}
	if !running(pid) {
		t.Errorf("power on of a machine that is on stopped it (pid %d)", pid)
	}

	if err := p.PowerOff(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitExit(t, pid)
	wantPower(ctx, t, p, c, Off)
	if err := p.PowerOff(ctx, c); err != nil {
		t.Errorf("power off of a machine that is off: %v", err)
	}

	// Cycle from off: on.
	if err := p.PowerCycle(ctx, c); err != nil {
		t.Fatal(err)
	}
	pid = waitPid(ctx, t, pidfile, pid)
	wantPower(ctx, t, p, c, On)

	// Cycle from on: the machine stops and starts anew (ipmi_sim powers
	// on a second after the off).
	if err := p.PowerCycle(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitExit(t, pid)
	waitPid(ctx, t, pidfile, pid)
	wantPower(ctx, t, p, c, On)

	noPassword(t, sim.Password, logs.String())
}

// TestIPMISimBootDeviceRefused: ipmi_sim refuses every boot device; the
// error says so, at once, without retrying.
func TestIPMISimBootDeviceRefused(t *testing.T) {
	sim, _ := startSim(t, "boot")
	var logs bytes.Buffer
	p := simPool(t, &logs)
	c := simCreds(sim, IPMI)
	for _, opts := range []BootOptions{{}, {Persistent: true, EFI: true}} {
		err := p.SetBootPXE(t.Context(), c, opts)
		t.Logf("SetBootPXE(%+v): %v", opts, err)
		if !errors.Is(err, ErrBootDeviceRefused) {
			t.Fatalf("SetBootPXE(%+v): %v, want ErrBootDeviceRefused", opts, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Attempts != 1 || e.Address != sim.Addr || e.Op != "set boot device" {
			t.Errorf("error %#v: want one attempt at set boot device on %s", e, sim.Addr)
		}
		if !strings.Contains(err.Error(), "Invalid data field") {
			t.Errorf("error %q does not say what the BMC answered", err)
		}
		noPassword(t, sim.Password, err.Error())
	}
	noPassword(t, sim.Password, logs.String())
}

// TestIPMISimWrongPassword: a refused login is an authentication error,
// not retried, and shows neither password.
func TestIPMISimWrongPassword(t *testing.T) {
	sim, _ := startSim(t, "auth")
	var logs bytes.Buffer
	p := simPool(t, &logs)
	for name, c := range map[string]Credentials{
		"password": {Address: sim.Addr, Username: sim.Username, Password: "wrong-" + sim.Password[:6], Driver: IPMI},
		"username": {Address: sim.Addr, Username: "nobody", Password: sim.Password, Driver: IPMI},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := p.PowerState(t.Context(), c)
			t.Logf("wrong %s: %v", name, err)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("err %v, want ErrAuth", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Attempts != 1 {
				t.Errorf("%d attempts, want 1 (a refused login is not retried)", e.Attempts)
			}
			msg := err.Error()
			if !strings.Contains(msg, "bmc "+sim.Addr+": power status: authentication refused") {
				t.Errorf("error %q: want the address, the operation and what failed", msg)
			}
			noPassword(t, c.Password, msg, fmt.Sprintf("%+v", err), logs.String())
			noPassword(t, sim.Password, msg, logs.String())
		})
	}
}

// TestIPMISimDeadBMC: a BMC address where nothing listens fails after the
// retries as unreachable, while an operation on a live BMC, started after
// it, completes before it gives up.
func TestIPMISimDeadBMC(t *testing.T) {
	sim, pidfile := startSim(t, "live")
	dead := deadUDPAddr(t)
	var logs bytes.Buffer
	p := New(Config{Timeout: 2 * time.Second, Attempts: 3, Backoff: 200 * time.Millisecond, MaxBackoff: time.Second, Concurrency: 2, Log: testLog(t, &logs)})
	deadCreds := Credentials{Address: dead, Username: "admin", Password: sim.Password, Driver: IPMI}

	deadDone := make(chan error, 1)
	go func() { deadDone <- p.PowerOn(t.Context(), deadCreds) }()

	c := simCreds(sim, IPMI)
	if err := p.PowerOn(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	waitPid(t.Context(), t, pidfile, 0)
	if st, err := p.PowerState(t.Context(), c); err != nil || st != On {
		t.Fatalf("live BMC: %v, %v", st, err)
	}
	select {
	case err := <-deadDone:
		t.Fatalf("the dead BMC gave up (%v) before the live BMC's operations completed", err)
	default:
	}

	err := <-deadDone
	t.Logf("dead BMC: %v", err)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("dead BMC: %v, want ErrUnreachable", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Attempts != 3 {
		t.Errorf("dead BMC: %v, want 3 attempts", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "bmc "+dead+": power on: unreachable (3 attempts): ipmi: no answer,") {
		t.Errorf("dead BMC error %q: want the address, the operation and what failed", msg)
	}
	noPassword(t, sim.Password, err.Error(), logs.String())
}

// TestIPMISimDefaultOrder: with no driver named, Redfish is tried first
// (nothing listens on 443 here) and IPMI does the work.
func TestIPMISimDefaultOrder(t *testing.T) {
	sim, _ := startSim(t, "order")
	var logs bytes.Buffer
	p := simPool(t, &logs)
	st, err := p.PowerState(t.Context(), simCreds(sim, ""))
	if err != nil || st != Off {
		t.Fatalf("power state: %v, %v; want off", st, err)
	}
	noPassword(t, sim.Password, logs.String())
}

// TestIPMIPing: ipmi_sim answers the ping; a closed port does not.
func TestIPMIPing(t *testing.T) {
	sim, _ := startSim(t, "ping")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if !ipmiPing(ctx, sim.Addr) {
		t.Errorf("ipmi_sim at %s did not answer the IPMI ping", sim.Addr)
	}
	if ipmiPing(ctx, deadUDPAddr(t)) {
		t.Error("a closed port answered the IPMI ping")
	}
}

// deadUDPAddr is a loopback UDP address nothing listens on.
func deadUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func wantPower(ctx context.Context, t *testing.T, p *Pool, c Credentials, want PowerState) {
	t.Helper()
	// ipmi_sim powers on a second after a cycle's off: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := p.PowerState(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("power %s, want %s", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPid waits for the startcmd to write a pid other than old, running.
func waitPid(ctx context.Context, t *testing.T, path string, old int) int {
	t.Helper()
	for {
		b, _ := os.ReadFile(path)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != old && running(pid) {
			return pid
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the machine did not start: no new pid in %s: %v", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// running reports whether pid runs (and is no zombie).
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return !(i >= 0 && i+2 < len(s) && s[i+2] == 'Z')
}

func waitExit(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the machine (pid %d) still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
