package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// errSkipped marks a measurement the host cannot make (a missing tool).
var errSkipped = errors.New("skipped")

// The iPXE measurement's network: a bridge in the server namespace with a
// tap for the VM.
const (
	vmBridge = "br-vm"
	vmTap    = "tap-vm"
	vmMAC    = "52:54:00:b0:0e:01"
	vmNICROM = "/usr/lib/ipxe/qemu/efi-virtio.rom" // ipxe-qemu: iPXE for QEMU's virtio NIC
)

var vmSite = outpostSite{iface: vmBridge, addr: "198.19.0.1", subnet: store.Subnet{
	Name:      "vm",
	CIDR:      "198.19.0.0/24",
	Pools:     []store.Range{{Start: "198.19.0.100", End: "198.19.0.200"}},
	Discovery: true,
}}

// ipxeDHCPPhase boots a QEMU BIOS VM (software emulation) whose NIC ROM is
// iPXE against applianced at debug level, and returns the seconds from the
// first DISCOVER applianced received from the VM to the first ACK it
// answered it: how long iPXE's first DHCP takes against Outpost. The VM
// is killed once that ACK is out.
func ipxeDHCPPhase(ctx context.Context, log *slog.Logger, bn *sim.Net, dir, applianced string) (float64, error) {
	qemu, err := lookTFTP("qemu-system-x86_64", "qemu-system-x86")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSkipped, err)
	}
	for file, pkg := range map[string]string{vmNICROM: "ipxe-qemu", "/dev/net/tun": "the tun module"} {
		if _, err := os.Stat(file); err != nil {
			return 0, fmt.Errorf("%w: %s missing (%s)", errSkipped, file, pkg)
		}
	}
	steps := [][]string{
		{"link", "add", vmBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"addr", "add", vmSite.addr + "/24", "dev", vmBridge},
		{"link", "set", vmBridge, "up"},
		{"tuntap", "add", "dev", vmTap, "mode", "tap"},
		{"link", "set", vmTap, "master", vmBridge, "up"},
	}
	for _, args := range steps {
		if _, err := bn.Server.Run(ctx, "ip", args...); err != nil {
			return 0, err
		}
	}
	vdir := filepath.Join(dir, "ipxe")
	if err := os.Mkdir(vdir, 0o755); err != nil {
		return 0, err
	}
	srv, err := startOutpostDHCP(ctx, bn, vdir, applianced, vmSite, "debug")
	if err != nil {
		return 0, err
	}
	defer srv.stop()
	vm, err := startProc(bn.Server, filepath.Join(vdir, "qemu.log"), nil, qemu,
		"-accel", "tcg", "-m", "256", "-nographic", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-netdev", "tap,id=n0,ifname="+vmTap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+vmMAC+",bootindex=1")
	if err != nil {
		return 0, err
	}
	defer vm.stop()
	started := time.Now()
	first, secs, err := waitDHCPPhase(ctx, srv, vm, vmMAC, 3*time.Minute)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "dhcp: ipxe: first DISCOVER from %s %.1f s after QEMU started, its ACK %.2f s later\n",
		vmMAC, first.Sub(started).Seconds(), secs)
	log.Debug("ipxe dhcp phase", "seconds", secs, "log", srv.log)
	return secs, nil
}

// dhcpLogRE matches applianced's debug lines for one packet received or
// answered (slog's text format).
var dhcpLogRE = regexp.MustCompile(`^time=(\S+) level=DEBUG msg="dhcp: (received|answered)".* mac=(\S+) .*type=(\S+)`)

// waitDHCPPhase watches srv's log until it answered mac's first ACK, and
// returns when it received mac's first DISCOVER and the seconds from then
// to the ACK.
func waitDHCPPhase(ctx context.Context, srv, vm *benchProc, mac string, limit time.Duration) (time.Time, float64, error) {
	deadline := time.Now().Add(limit)
	for {
		if first, secs, ok, err := dhcpPhaseFromLog(srv.log, mac); err != nil || ok {
			return first, secs, err
		}
		var err error
		switch {
		case vm.exited():
			err = fmt.Errorf("QEMU exited before the ACK; log %s:\n%s", vm.log, lastLines(vm.log, 20))
		case srv.exited():
			err = fmt.Errorf("applianced exited; log %s:\n%s", srv.log, lastLines(srv.log, 20))
		case time.Now().After(deadline):
			err = fmt.Errorf("no ACK to %s within %v; logs %s, %s", mac, limit, srv.log, vm.log)
		}
		if err != nil {
			return time.Time{}, 0, err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dhcpPhaseFromLog reads an applianced debug log for mac's first DISCOVER
// received and the first ACK answered after it.
func dhcpPhaseFromLog(path, mac string) (first time.Time, secs float64, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return first, 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := dhcpLogRE.FindStringSubmatch(sc.Text())
		if m == nil || m[3] != mac {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			return first, 0, false, fmt.Errorf("%s: %w", path, err)
		}
		reply := strings.Contains(sc.Text(), " reply=ACK")
		switch {
		case first.IsZero() && m[2] == "received" && m[4] == "DISCOVER":
			first = at
		case !first.IsZero() && m[2] == "answered" && reply:
			return first, at.Sub(first).Seconds(), true, nil
		}
	}
	return first, 0, false, sc.Err()
}
