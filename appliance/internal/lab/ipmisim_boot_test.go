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
	if got, err := sim.BootDevice(ctx); err != nil || got != "No override" {
		t.Fatalf("boot device at start: %q, %v; want No override", got, err)
	}
	out, err := sim.IPMITool(ctx, "chassis", "bootdev", "pxe")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sim.BootDevice(ctx); err != nil || got != "Force PXE" {
		t.Fatalf("boot device after bootdev pxe (%q): %q, %v; want Force PXE", out, got, err)
	}
	wantState(ctx, t, sim, "off")
	run(ctx, t, sim, "chassis", "power", "on")
	pid := waitPidfile(ctx, t, pidfile)
	wantState(ctx, t, sim, "on")
	run(ctx, t, sim, "chassis", "power", "off")
	waitGone(t, pid)
	wantState(ctx, t, sim, "off")
	os.Remove(pidfile)
	run(ctx, t, sim, "chassis", "power", "cycle")
	waitPidfile(ctx, t, pidfile)
	wantState(ctx, t, sim, "on")
}
