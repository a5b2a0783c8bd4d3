package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/outposthq/outpost/internal/pprofserve"
)

// profiler fetches the profiles of a daemon built with -tags pprof
// (internal/pprofserve) serving them at addr, into dir, its files named
// after the daemon (name). A nil one does nothing.
type profiler struct {
	name, addr, dir string
	httpc           *http.Client // http.DefaultClient if nil; the storm's dials into applianced's namespace
}

// env is what the daemon's environment needs to serve the profiles.
func (p *profiler) env() []string {
	if p == nil {
		return nil
	}
	return []string{pprofserve.EnvAddr + "=" + p.addr}
}

// cpuProfileSeconds is how long sync.sites profiles centrald's CPU from
// the first order on.
const cpuProfileSeconds = 20

// traceSeconds is how long sync.sites traces centrald's goroutines
// from the first order on (go tool trace -pprof=sched: what waited to
// run, and where).
const traceSeconds = 5

// startTimed starts a CPU profile of cpuProfileSeconds and an execution
// trace of traceSeconds; finish waits for them.
func (p *profiler) startTimed(ctx context.Context) <-chan error {
	if p == nil {
		return nil
	}
	done := make(chan error, 2)
	go func() {
		done <- p.fetch(ctx, "GET", fmt.Sprintf("pprof/profile?seconds=%d", cpuProfileSeconds), p.name+".cpu.pprof")
	}()
	go func() {
		done <- p.fetch(ctx, "GET", fmt.Sprintf("pprof/trace?seconds=%d", traceSeconds), p.name+".trace")
	}()
	return done
}

// finish waits for startTimed's profiles, then takes a heap profile
// (after a GC), the goroutines, and the runtime's memory statistics (the
// heap profile's text form ends with them: heap, stacks, GC goal).
func (p *profiler) finish(ctx context.Context, timed <-chan error) error {
	if p == nil {
		return nil
	}
	for range 2 {
		if err := <-timed; err != nil {
			return err
		}
	}
	for path, file := range map[string]string{"pprof/heap?gc=1": ".heap.pprof", "pprof/goroutine": ".goroutine.pprof",
		"pprof/heap?debug=1": ".memstats.txt"} {
		if err := p.fetch(ctx, "GET", path, p.name+file); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "%s's profiles are in %s (go tool pprof -top %s)\n",
		p.name, p.dir, filepath.Join(p.dir, p.name+".heap.pprof"))
	return nil
}

// startCPU starts a CPU profile that runs until stopCPU.
func (p *profiler) startCPU(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.fetch(ctx, "POST", "outpost/cpu/start", "")
}

// stopCPU stops startCPU's profile and keeps it as <name><suffix>.cpu.pprof.
func (p *profiler) stopCPU(ctx context.Context, suffix string) error {
	if p == nil {
		return nil
	}
	file := p.name + suffix + ".cpu.pprof"
	if err := p.fetch(ctx, "POST", "outpost/cpu/stop", file); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s's CPU profile: go tool pprof -top %s\n", p.name, filepath.Join(p.dir, file))
	return nil
}

// fetch asks the daemon for /debug/<path> and writes the answer to file
// in p.dir (discards it if file is empty).
func (p *profiler) fetch(ctx context.Context, method, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.addr+"/debug/"+path, nil)
	if err != nil {
		return err
	}
	httpc := p.httpc
	if httpc == nil {
		httpc = http.DefaultClient
	}
	res, err := httpc.Do(req)
	if err != nil {
		return fmt.Errorf("%s's pprof: %w", p.name, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("%s's pprof %s: %s %s", p.name, path, res.Status, msg)
	}
	if file == "" {
		_, err := io.Copy(io.Discard, res.Body)
		return err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
