package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// cpuProfileSeconds is how long sync.sites profiles centrald's CPU from
// the first order on.
const cpuProfileSeconds = 20

// centralProfiler fetches the profiles of a centrald built with -tags
// pprof (central/cmd/centrald/pprof.go) serving net/http/pprof at addr,
// into dir. A nil one does nothing.
type centralProfiler struct {
	addr, dir string
}

// traceSeconds is how long sync.sites traces centrald's goroutines
// from the first order on (go tool trace -pprof=sched: what waited to
// run, and where).
const traceSeconds = 5

// startCPU starts a CPU profile of cpuProfileSeconds and an execution
// trace of traceSeconds; finish waits for them.
func (p *centralProfiler) startCPU(ctx context.Context) <-chan error {
	if p == nil {
		return nil
	}
	done := make(chan error, 2)
	go func() {
		done <- p.fetch(ctx, fmt.Sprintf("profile?seconds=%d", cpuProfileSeconds), "centrald.cpu.pprof")
	}()
	go func() {
		done <- p.fetch(ctx, fmt.Sprintf("trace?seconds=%d", traceSeconds), "centrald.trace")
	}()
	return done
}

// finish waits for the CPU profile, then takes a heap profile (after a
// GC), the goroutines, and the runtime's memory statistics (the heap
// profile's text form ends with them: heap, stacks, GC goal).
func (p *centralProfiler) finish(t lab.T, cpu <-chan error) {
	if p == nil {
		return
	}
	for range 2 {
		if err := <-cpu; err != nil {
			t.Fatal(err)
		}
	}
	for path, file := range map[string]string{"heap?gc=1": "centrald.heap.pprof", "goroutine": "centrald.goroutine.pprof",
		"heap?debug=1": "centrald.memstats.txt"} {
		if err := p.fetch(t.Context(), path, file); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(os.Stderr, "sync.sites: centrald's profiles are in %s (go tool pprof -top %s)\n",
		p.dir, filepath.Join(p.dir, "centrald.heap.pprof"))
}

func (p *centralProfiler) fetch(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("centrald's pprof: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("centrald's pprof %s: %s", path, res.Status)
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
