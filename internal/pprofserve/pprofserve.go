// Package pprofserve serves net/http/pprof on a loopback address for a
// daemon built with the pprof build tag, so that a benchmark can profile
// it where it runs. Release builds do not import it: only the daemons'
// files tagged pprof do, and nothing else serves http.DefaultServeMux.
package pprofserve

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // its handlers on http.DefaultServeMux
	"os"
	"runtime/pprof"
	"sync"
)

// EnvAddr names the environment variable holding the address to serve
// at; unset, nothing is served.
const EnvAddr = "OUTPOST_PPROF_ADDR"

// Serve serves net/http/pprof at $OUTPOST_PPROF_ADDR, which must be a
// loopback address: otherwise prog exits with status 2, saying why.
func Serve(prog string) {
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: pprof: %v\n", prog, err)
		os.Exit(2)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		fmt.Fprintf(os.Stderr, "%s: pprof: %s must be a loopback address\n", prog, EnvAddr)
		os.Exit(2)
	}
	http.HandleFunc("POST /debug/outpost/cpu/start", cpu.start)
	http.HandleFunc("POST /debug/outpost/cpu/stop", cpu.stop)
	go http.Serve(ln, nil)
}

// cpu is a CPU profile a benchmark starts and stops around exactly the
// work it measures (net/http/pprof's profile endpoint takes a duration).
var cpu cpuProfile

type cpuProfile struct {
	mu  sync.Mutex
	buf *bytes.Buffer // nil when no profile runs
}

// start starts a CPU profile; 409 if one runs.
func (p *cpuProfile) start(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf != nil {
		http.Error(w, "a CPU profile is already running", http.StatusConflict)
		return
	}
	buf := new(bytes.Buffer)
	if err := pprof.StartCPUProfile(buf); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	p.buf = buf
}

// stop stops the CPU profile start started and answers it; 409 if none
// runs.
func (p *cpuProfile) stop(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf == nil {
		http.Error(w, "no CPU profile is running", http.StatusConflict)
		return
	}
	pprof.StopCPUProfile()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(p.buf.Bytes())
	p.buf = nil
}
