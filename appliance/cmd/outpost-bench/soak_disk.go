package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/soak"
)

// soakFaultNode is what the disk and clock faults need of one site
// node: its data directory (on a filesystem of its own: soakNodeFS) and
// the offset file its lab clock reads (soakClockEnv).
type soakFaultNode struct {
	ID        string
	DataDir   string
	ClockFile string
}

// soakFaultNodes is what the disk and clock faults need of the site:
// the node they hit (the one that leads, where the fault costs most).
type soakFaultNodes interface {
	faultNode(ctx context.Context) (soakFaultNode, error)
}

// soakNodeFSSize is a node's data filesystem: room for a day's store and
// Raft log many times over, and quick to fill.
const soakNodeFSSize = "512m"

// soakNodeFS mounts a tmpfs of soakNodeFSSize on dir, a node's data
// directory, before the node starts, so that disk.full can fill it
// without touching the host's filesystems, until the soak ends.
func soakNodeFS(t lab.T, dir string) { lab.MountTmpfs(t, dir, soakNodeFSSize) }

// ownFS says whether dir is the root of a filesystem of its own (its
// device differs from its parent's): only such a directory may be
// filled.
func ownFS(dir string) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Stat(dir, &a); err != nil {
		return false, err
	}
	if err := syscall.Stat(filepath.Dir(dir), &b); err != nil {
		return false, err
	}
	return a.Dev != b.Dev, nil
}

// soakFillName is the file disk.full fills a data directory with.
const soakFillName = "soak-fill"

// diskFull fills the data filesystem of the node that leads for f's
// duration, then frees it. A data directory that is not a filesystem
// of its own is never filled (the fault is skipped and says so): it
// would fill the host's.
func (in *soakInjector) diskFull(ctx context.Context, f soak.Fault, nodes soakFaultNodes) {
	nd, err := nodes.faultNode(ctx)
	if err != nil {
		in.note(f, "skipped", err)
		return
	}
	if own, err := ownFS(nd.DataDir); err != nil || !own {
		in.note(f, "skipped", nd.DataDir, " is not a filesystem of its own (", err, "): soakNodeFS it")
		return
	}
	n, err := lab.FillFS(filepath.Join(nd.DataDir, soakFillName))
	defer func() {
		if err := os.Remove(filepath.Join(nd.DataDir, soakFillName)); err != nil {
			in.chk.Violate("lab", "disk.full: free %s: %v", nd.DataDir, err)
		}
	}()
	if err != nil {
		in.chk.Violate("lab", "disk.full: fill %s: %v", nd.DataDir, err)
		return
	}
	in.note(f, "filled", nd.ID, fmt.Sprintf("'s data filesystem (%d MiB)", n>>20))
	in.until(ctx, f)
}

// faultNode is the node of the site that leads now: its data directory
// (a filesystem of its own, soakNodeFS) and its clock file.
func (s *soakSite) faultNode(ctx context.Context) (soakFaultNode, error) {
	i, err := s.leaderIndex(ctx)
	if err != nil {
		return soakFaultNode{}, err
	}
	nd := s.nodes[i]
	return soakFaultNode{ID: nd.id, DataDir: filepath.Join(nd.dir, "data"), ClockFile: nd.clockFile}, nil
}
