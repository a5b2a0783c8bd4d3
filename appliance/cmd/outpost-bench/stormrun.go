package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stormArt is the artifact directory applianced serves (over TFTP and
// HTTP): links to (or copies of) the iPXE binary, the installer's kernel
// and initrd from `make images`, and the storm's OS image.
type stormArt struct {
	dir                    string
	bootFile               string // what the DHCP server names for BIOS PXE
	kernel, initrd         string
	bootSize               int64
	kernelSize, initrdSize int64
	imageSHA256            string // of the gzip'ed file, as the agent checks it
	imageSize              int64
}

// stormArtifacts fills dir from src (images/out) and writes the OS image:
// 4 MiB of random bytes, gzip'ed. applianced opens artifacts through an
// os.Root, which refuses symlinks that leave it: hence links or copies.
func stormArtifacts(src, dir string) (*stormArt, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	art := &stormArt{dir: dir, bootFile: "undionly.kpxe", kernel: "vmlinuz", initrd: "installer.initrd"}
	for _, f := range []struct {
		name string
		size *int64
	}{{art.bootFile, &art.bootSize}, {art.kernel, &art.kernelSize}, {art.initrd, &art.initrdSize}} {
		fi, err := os.Stat(filepath.Join(src, f.name))
		if err != nil {
			return nil, fmt.Errorf("boot artifact %s: %w (build them with `make images`)", f.name, err)
		}
		*f.size = fi.Size()
		for _, name := range []string{f.name, f.name + ".sha256"} {
			err := linkOrCopy(filepath.Join(src, name), filepath.Join(dir, name))
			if err != nil && !(os.IsNotExist(err) && name != f.name) {
				return nil, err
			}
		}
	}
	return art, art.writeImage()
}

// writeImage writes the OS image and its sha256 sidecar.
func (art *stormArt) writeImage() error {
	raw := make([]byte, stormImageRaw)
	rand.Read(raw)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	art.imageSHA256, art.imageSize = hex.EncodeToString(sum[:]), int64(buf.Len())
	path := filepath.Join(art.dir, stormImageFile)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(path+".sha256", []byte(art.imageSHA256), 0o644)
}

// linkOrCopy hard-links src to dst, or copies it across file systems.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Phases of a machine's walk.
const (
	phaseDHCP  = iota // DISCOVER to ACK
	phaseTFTP         // the iPXE binary
	phaseBoot         // the iPXE script, the kernel's and initrd's first bytes
	phaseAgent        // the workflow, first GET to done
	phaseDone         // the final check of the machine's record
	numPhases
)

var phaseNames = [numPhases]string{"dhcp", "tftp", "boot", "agent", "done"}

// stormResult is one machine's walk.
type stormResult struct {
	id     string
	err    error // nil: ok
	phase  int   // where err happened
	total  time.Duration
	phases [numPhases]time.Duration // how long each phase it finished took
	addr   string                   // the address its ACK gave
}

// stormEnv is what every machine of the storm shares: the network, the
// artifacts it checks against, the DHCP relay and the counters.
type stormEnv struct {
	bn      *dhcpNet
	art     *stormArt
	relay   *stormRelay
	stats   *stormStats
	inPhase [numPhases]atomic.Int32
	done    atomic.Int32
	failed  atomic.Int32
}

func newStormEnv(bn *dhcpNet, art *stormArt) (*stormEnv, error) {
	relay, err := newStormRelay(bn)
	if err != nil {
		return nil, err
	}
	return &stormEnv{bn: bn, art: art, relay: relay, stats: &stormStats{}}, nil
}

func (e *stormEnv) close() { e.relay.close() }

// storm provisions machines, at most par at a time, and reads applianced's
// CPU time before the first DHCP packet and after the last machine.
func (e *stormEnv) storm(ctx context.Context, p *benchProc, machines []stormMachine, par int) (*stormRun, error) {
	pid := p.cmd.Process.Pid
	before, err := cpuSeconds(pid)
	if err != nil {
		return nil, err
	}
	run := &stormRun{results: make([]stormResult, len(machines)), stats: e.stats, par: par}
	// The generator shares the host with applianced, and so does anything
	// else running: say how busy it is.
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(os.Stderr, "storm: starts; load average %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	start := time.Now()
	stopProgress := e.progress(start, len(machines))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, m := range machines {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				run.results[i] = stormResult{id: m.id, err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			run.results[i] = e.provision(ctx, m)
		})
	}
	wg.Wait()
	run.wall = time.Since(start)
	after, err := cpuSeconds(pid)
	stopProgress()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil || p.exited():
		return nil, fmt.Errorf("applianced exited during the storm (%v); log %s:\n%s", err, p.log, lastLines(p.log, 20))
	}
	run.cpu = time.Duration((after - before) * float64(time.Second))
	return run, nil
}

// progress prints how many machines are in each phase every 10 s until
// the returned function is called.
func (e *stormEnv) progress(start time.Time, n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var b strings.Builder
			fmt.Fprintf(&b, "storm: %5.0f s:", time.Since(start).Seconds())
			for ph := range phaseDone {
				fmt.Fprintf(&b, " %s %d,", phaseNames[ph], e.inPhase[ph].Load())
			}
			fmt.Fprintf(&b, " finished %d of %d (%d failed)", e.done.Load(), n, e.failed.Load())
			fmt.Fprintln(os.Stderr, b.String())
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
