package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/soak"
	"github.com/outposthq/outpost/internal/clock"
	"github.com/outposthq/outpost/internal/testwait"
)

// fixedNode is a soakFaultNodes of one node.
type fixedNode soakFaultNode

func (n fixedNode) faultNode(context.Context) (soakFaultNode, error) { return soakFaultNode(n), nil }

// newTestInjector is an injector whose faults start now.
func newTestInjector() *soakInjector {
	start := time.Now()
	return &soakInjector{start: start, chk: soak.NewChecker(func() time.Duration { return time.Since(start) })}
}

// freeBytes is the space left on dir's filesystem.
func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// TestDiskFullFault fills a node's own data filesystem for the fault's
// duration and frees it after; a directory on a shared filesystem is
// never filled.
func TestDiskFullFault(t *testing.T) {
	lab.Require(t, "root")
	shared := t.TempDir()
	in := newTestInjector()
	f := soak.Fault{Kind: soak.DiskFull, Start: 0, End: 300 * time.Millisecond}
	in.diskFull(t.Context(), f, fixedNode{ID: "n1", DataDir: shared})
	if _, err := os.Stat(filepath.Join(shared, soakFillName)); !os.IsNotExist(err) {
		t.Fatalf("a directory on a shared filesystem was filled (%v)", err)
	}
	if !strings.Contains(strings.Join(in.log, "\n"), "skipped") {
		t.Fatalf("the skip is not said: %q", in.log)
	}

	data := filepath.Join(t.TempDir(), "data")
	soakNodeFS(t, data)
	before := freeBytes(t, data)
	done := make(chan struct{})
	f.End = time.Since(in.start) + 30*time.Second
	ctx, cancel := context.WithCancel(t.Context())
	go func() { in.diskFull(ctx, f, fixedNode{ID: "n1", DataDir: data}); close(done) }()
	testwait.For(t, "the data filesystem full", 30*time.Second, func() bool { return freeBytes(t, data) == 0 })
	cancel() // the fault's end
	<-done
	if after := freeBytes(t, data); after != before {
		t.Fatalf("%d bytes free after the fault, %d before", after, before)
	}
	if vs := in.chk.Violations(); len(vs) != 0 {
		t.Fatalf("violations: %v", vs)
	}
}

// TestClockStepFault steps a node's clock file by the fault's step, and
// back at its end; a clock reading the file follows.
func TestClockStepFault(t *testing.T) {
	file, env := soakClockEnv(t.TempDir(), "n1")
	if len(env) != 1 || env[0] != clock.OffsetEnv+"="+file {
		t.Fatalf("env %v", env)
	}
	c, err := clock.FromFile(file)
	if err != nil {
		t.Fatal(err)
	}
	in := newTestInjector()
	f := soak.Fault{Kind: soak.ClockStep, Start: 0, End: time.Hour, Step: -3 * time.Hour}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { in.clockStep(ctx, f, fixedNode{ID: "n1", ClockFile: file}); close(done) }()
	testwait.For(t, "the step", 30*time.Second, func() bool { return c.Offset() == f.Step })
	cancel()
	<-done
	off, err := clock.ReadOffset(file)
	if err != nil || off != 0 {
		t.Fatalf("after the fault the offset is %v (%v), want 0", off, err)
	}
}
