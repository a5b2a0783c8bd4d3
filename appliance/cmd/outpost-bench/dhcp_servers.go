package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The DHCP servers the benchmarks start: applianced, kea-dhcp4 and
// dnsmasq, each in the foreground in a namespace, with a configuration
// of the benchmark's own.

// buildApplianced builds applianced from this module into dir.
func buildApplianced(ctx context.Context, dir string, flags ...string) (string, error) {
	return goBuild(ctx, dir, "applianced", "./appliance/cmd/applianced", flags...)
}

// outpostSite is where a benchmark's applianced serves DHCP: an
// interface of the server namespace, its address, and the subnet.
type outpostSite struct {
	iface, addr string
	subnet      store.Subnet
}

// benchSite is the DORA benchmark's: the veth to perfdhcp.
var benchSite = outpostSite{iface: sim.ServerIface, addr: sim.ServerAddr, subnet: store.Subnet{
	Name:         "bench",
	CIDR:         sim.NetCIDR,
	Pools:        []store.Range{{Start: dhcpPoolStart, End: dhcpPoolEnd}},
	LeaseSeconds: dhcpLeaseSecs,
	Discovery:    true,
}}

// outpostArgs are the flags of a benchmark's applianced node id with its
// state in dir, serving DHCP on site's interface.
func outpostArgs(dir, id string, site outpostSite, level string) ([]string, error) {
	artifacts := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		return nil, err
	}
	return []string{"-id", id, "-data-dir", filepath.Join(dir, "data"),
		"-api-addr", site.addr + ":7000", "-raft-addr", site.addr + ":7001",
		"-dhcp-interface", site.iface, "-boot-addr", site.addr + ":8080",
		"-artifact-dir", artifacts, "-log-level", level}, nil
}

// startOutpostDHCP runs a single-node applianced serving DHCP on site's
// interface, and gives it site's subnet.
func startOutpostDHCP(ctx context.Context, bn *sim.Net, dir, bin string, site outpostSite, level string) (*benchProc, error) {
	return startOutpostDHCPEnv(ctx, bn, dir, bin, site, level, nil)
}

// startOutpostDHCPEnv is startOutpostDHCP with env added to applianced's
// environment.
func startOutpostDHCPEnv(ctx context.Context, bn *sim.Net, dir, bin string, site outpostSite, level string, env []string) (*benchProc, error) {
	args, err := outpostArgs(dir, "bench", site, level)
	if err != nil {
		return nil, err
	}
	p, err := startProc(bn.Server, filepath.Join(dir, "applianced.log"), env, bin, args...)
	if err != nil {
		return nil, err
	}
	if err := putSubnet(ctx, bn, p, filepath.Join(dir, "data", "admin.token"), site); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// putSubnet waits for the admin token and puts site's subnet (up to 60 s).
func putSubnet(ctx context.Context, bn *sim.Net, p *benchProc, tokenFile string, site outpostSite) error {
	return putSubnetIn(ctx, bn.Server, p, filepath.Dir(tokenFile), site, time.Minute)
}

// putSubnetIn waits (up to timeout) for the admin token and the API CA in
// the node's data directory, and puts site's subnet through the node's
// API at site.addr, dialled from ns.
func putSubnetIn(ctx context.Context, ns *lab.Netns, p dhcpServer, data string, site outpostSite, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		raw, err := os.ReadFile(filepath.Join(data, "admin.token"))
		var tr *http.Transport
		if err == nil && strings.HasSuffix(string(raw), "\n") {
			// The API CA is written before the token.
			tr, err = client.PinnedTransport(client.Pin{CAFile: filepath.Join(data, "api-ca.pem")})
		}
		if tr != nil {
			tr.DialContext, tr.DisableKeepAlives = ns.DialContext, true
			c := client.NewWithHTTP("https://"+site.addr+":7000", strings.TrimSpace(string(raw)), &http.Client{Timeout: 10 * time.Second, Transport: tr})
			if err = c.Put(ctx, "subnets", site.subnet.Name, site.subnet, nil); err == nil {
				return nil
			}
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("put subnet: %v; %s", err, p.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeKeaConf writes dir/kea-dhcp4.conf: kea-dhcp4 on iface with a
// memfile lease store persisted in dir, the benchmark's pool and no
// control socket. It returns the file and the environment that keeps
// Kea's pid and lock files in dir.
func writeKeaConf(dir, iface string) (path string, env []string, err error) {
	conf := map[string]any{"Dhcp4": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{iface}},
		"lease-database":    map[string]any{"type": "memfile", "persist": true, "name": filepath.Join(dir, "leases4.csv")},
		"valid-lifetime":    dhcpLeaseSecs,
		"subnet4": []any{map[string]any{
			"id": 1, "subnet": sim.NetCIDR,
			"pools": []any{map[string]any{"pool": dhcpPoolStart + " - " + dhcpPoolEnd}},
		}},
		// Kea's default: INFO, one line per OFFER and per ACK.
		"loggers": []any{map[string]any{"name": "kea-dhcp4", "severity": "INFO", "output_options": []any{map[string]any{"output": "stdout"}}}},
	}}
	raw, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "kea-dhcp4.conf")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return "", nil, err
	}
	// Kea keeps its pid and lock files in system directories unless told.
	return path, []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir}, nil
}

// startKea runs kea-dhcp4 in the foreground in ns on iface (writeKeaConf).
func startKea(ns *lab.Netns, iface, dir, bin string) (*benchProc, error) {
	conf, env, err := writeKeaConf(dir, iface)
	if err != nil {
		return nil, err
	}
	return startProc(ns, filepath.Join(dir, "kea-dhcp4.log"), env, bin, "-c", conf)
}

// startDnsmasq runs dnsmasq in the foreground as DHCP server only.
// --dhcp-lease-max lifts its default cap of 1,000 leases, which would
// NAK the rest of the run.
func startDnsmasq(bn *sim.Net, dir, bin string) (*benchProc, error) {
	return startProc(bn.Server, filepath.Join(dir, "dnsmasq.log"), nil, bin,
		"--no-daemon", "--conf-file=/dev/null", "--user=root",
		"--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--no-ping", "--port=0", "--interface="+sim.ServerIface, "--bind-interfaces",
		"--dhcp-range="+dhcpPoolStart+","+dhcpPoolEnd+",1h",
		"--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"),
		"--dhcp-authoritative", "--dhcp-lease-max=100000")
}

// logTail is the process's log file and its last lines, for an error.
func (p *benchProc) logTail() string {
	return fmt.Sprintf("log %s:\n%s", p.log, lastLines(p.log, 20))
}
