//go:build pprof

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // its handlers on http.DefaultServeMux
	"os"
)

// With the pprof build tag (outpost-bench -sync-pprof builds centrald
// so), centrald serves net/http/pprof at OUTPOST_PPROF_ADDR, a loopback
// address: nothing else serves http.DefaultServeMux. Release builds have
// no such listener.
func init() {
	addr := os.Getenv("OUTPOST_PPROF_ADDR")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "centrald: pprof:", err)
		os.Exit(2)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		fmt.Fprintln(os.Stderr, "centrald: pprof: OUTPOST_PPROF_ADDR must be a loopback address")
		os.Exit(2)
	}
	go http.Serve(ln, nil)
}
