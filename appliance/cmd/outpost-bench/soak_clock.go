package main

import (
	"context"
	"path/filepath"

	"github.com/outposthq/outpost/appliance/internal/soak"
	"github.com/outposthq/outpost/internal/clock"
)

// soakClockEnv is the environment that gives a node started in dir a lab
// clock (package clock): its offset file, and the variable naming it.
func soakClockEnv(dir, id string) (file string, env []string) {
	file = filepath.Join(dir, id+".clock-offset")
	return file, []string{clock.OffsetEnv + "=" + file}
}

// clockStep steps the wall clock of the node that leads by f.Step for
// f's duration, then back (its offset file to 0).
func (in *soakInjector) clockStep(ctx context.Context, f soak.Fault, nodes soakFaultNodes) {
	nd, err := nodes.faultNode(ctx)
	if err != nil {
		in.note(f, "skipped", err)
		return
	}
	if err := clock.WriteOffset(nd.ClockFile, f.Step); err != nil {
		in.chk.Violate("lab", "clock.step: %v", err)
		return
	}
	in.note(f, "stepped", nd.ID, "'s clock by ", f.Step)
	in.until(ctx, f)
	if err := clock.WriteOffset(nd.ClockFile, 0); err != nil {
		in.chk.Violate("lab", "clock.step: step back: %v", err)
	}
}
