package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIPMISimBootDevice: a simulator with BootDevice keeps the boot
// device ipmitool sets and reports it; power still runs and kills
// StartCmd, through the chassis control program.
func TestIPMISimBootDevice(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	sim := StartIPMISim(t, IPMISimConfig{
		Name:       "boottest",
		StartCmd:   fmt.Sprintf("sh -c 'echo $$ > %s; exec sleep 3600'", pidfile),
		BootDevice: true,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if got := bootDevice(ctx, t, sim); got != "No override" {
		t.Fatalf("boot device at start: %q; want No override", got)
	}
	out := retry(ctx, t, sim, "chassis", "bootdev", "pxe")
	if got := bootDevice(ctx, t, sim); got != "Force PXE" {
		t.Fatalf("boot device after bootdev pxe (%q): %q; want Force PXE", out, got)
	}
	waitState(ctx, t, sim, "off")
	retry(ctx, t, sim, "chassis", "power", "on")
	pid := waitPidfile(ctx, t, pidfile)
	waitState(ctx, t, sim, "on")
	retry(ctx, t, sim, "chassis", "power", "off")
	waitGone(t, pid)
	waitState(ctx, t, sim, "off")
	os.Remove(pidfile)
	run(ctx, t, sim, "chassis", "power", "cycle")
	waitPidfile(ctx, t, pidfile)
	waitState(ctx, t, sim, "on")
}

// retry runs an idempotent ipmitool command until it answers: on a
// loaded machine one try of IPMITool (a second) may time out.
func retry(ctx context.Context, t *testing.T, sim *IPMISim, args ...string) string {
	t.Helper()
	for {
		out, err := sim.IPMITool(ctx, args...)
		if err == nil {
			return out
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
	}
}

// waitState waits until the simulator reports power state want.
func waitState(ctx context.Context, t *testing.T, sim *IPMISim, want string) {
	t.Helper()
	for {
		got, err := sim.PowerState(ctx)
		if err == nil && got == want {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("power state %q (%v), want %s", got, err, want)
		}
	}
}

// bootDevice asks the simulator its boot device until it answers.
func bootDevice(ctx context.Context, t *testing.T, sim *IPMISim) string {
	t.Helper()
	for {
		got, err := sim.BootDevice(ctx)
		if err == nil {
			return got
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
	}
}
