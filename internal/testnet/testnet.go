// Package testnet holds what the tests of both sides need of the network:
// loopback addresses for the listeners of nodes they start.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	given = map[string]bool{} // handed out in this process
)

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago
// and was not handed out before in this process. The port is below the
// kernel's ephemeral range when that is known, so that no outgoing
// connection (of which Raft and TLS tests make many) takes it between
// now and the moment the test listens on it, or while a node is down for
// a restart.
func FreeAddr(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	low := ephemeralLow()
	for range 1000 {
		addr := "127.0.0.1:0"
		if low > 11000 {
			addr = fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(low-10000))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		got := ln.Addr().String()
		ln.Close()
		if !given[got] {
			given[got] = true
			return got
		}
	}
	t.Fatal("testnet: no free port on 127.0.0.1")
	return ""
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

// ephemeralLow is the lowest port Linux gives outgoing connections, or 0.
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}
