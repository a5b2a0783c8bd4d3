//go:build pprof

package main

import "github.com/outposthq/outpost/internal/pprofserve"

// With the pprof build tag (outpost-bench -sync-pprof builds centrald
// so), centrald serves net/http/pprof at OUTPOST_PPROF_ADDR, a loopback
// address. Release builds have no such listener.
func init() { pprofserve.Serve("centrald") }
