package lab

import (
	"context"
	"fmt"
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
