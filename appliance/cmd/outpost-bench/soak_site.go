package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// soakSite is the soak's site: applianced serving the boot network of a
// sim.Net (as the storm's does), syncing with central through one fault
// proxy per central node (its WAN), started again on its data after a
// SIGKILL.
type soakSite struct {
	bn   *sim.Net
	dir  string
	bin  string
	args []string
	wan  []*lab.FaultProxy
	api  *client.Client
	http *http.Client // the API's transport, for /metrics
	// env is applianced's environment beyond the soak's, and clockFile
	// the offset file its lab clock reads (soakClockEnv).
	env       []string
	clockFile string

	mu          sync.Mutex
	proc        *benchProc
	incarnation int
}

// soakSiteID is the site's id at central.
const soakSiteID = "soak"

// startSoakSite creates the site at central, starts applianced in bn's
// server namespace with its data and logs in dir, and puts its subnet.
func startSoakSite(ctx context.Context, t lab.T, bn *sim.Net, dir, bin, artifacts string, cen *soakCentral) (*soakSite, error) {
	var created struct {
		Credential string `json:"credential"`
	}
	if err := cen.do(ctx, time.Minute, "POST", "/v1/sites", map[string]string{"id": soakSiteID, "name": soakSiteID}, &created); err != nil {
		return nil, fmt.Errorf("create the site at central: %w", err)
	}
	credFile := filepath.Join(dir, "site.credential")
	if err := os.WriteFile(credFile, []byte(created.Credential+"\n"), 0o600); err != nil {
		return nil, err
	}
	s := &soakSite{bn: bn, dir: dir, bin: bin}
	var urls []string
	for _, addr := range cen.addrs() {
		p := lab.StartFaultProxyIn(t, bn.Server, "127.0.0.1:0", addr)
		s.wan = append(s.wan, p)
		urls = append(urls, "http://"+p.Addr)
	}
	data := filepath.Join(dir, "data")
	soakNodeFS(t, data)                          // for disk.full (soak_disk.go)
	s.clockFile, s.env = soakClockEnv(dir, "n1") // for clock.step (soak_clock.go)
	s.args = []string{"-id", "n1", "-data-dir", data,
		"-api-addr", stormAPIAddr, "-raft-addr", "127.0.0.1:7001",
		"-dhcp-interface", sim.ServerIface, "-boot-addr", stormBootAddr, "-tftp-addr", stormTFTPAddr,
		"-artifact-dir", artifacts, "-log-level", "info",
		"-central-url", strings.Join(urls, ","), "-insecure-central", // a lab on loopback
		"-site-id", soakSiteID, "-site-credential-file", credFile}
	if err := s.start(); err != nil {
		return nil, err
	}
	site := outpostSite{iface: sim.ServerIface, addr: sim.ServerAddr, subnet: stormSubnet}
	if err := putSubnetIn(ctx, bn.Server, s.proc, data, site, time.Minute); err != nil {
		return nil, err
	}
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		return nil, err
	}
	tr, err := client.PinnedTransport(client.Pin{CAFile: filepath.Join(data, "api-ca.pem")})
	if err != nil {
		return nil, err
	}
	tr.DialContext, tr.MaxIdleConnsPerHost = bn.Server.DialContext, 16
	s.http = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	s.api = client.NewWithHTTP("https://"+stormAPIAddr, strings.TrimSpace(string(token)), s.http)
	return s, nil
}

// start starts applianced, logging to the next incarnation's file.
func (s *soakSite) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.incarnation++
	p, err := startProc(s.bn.Server, filepath.Join(s.dir, fmt.Sprintf("applianced-%d.log", s.incarnation)), s.env, s.bin, s.args...)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// kill SIGKILLs applianced's process group.
func (s *soakSite) kill() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// process is the running applianced and its name for samples.
func (s *soakSite) process() (*benchProc, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc, fmt.Sprintf("applianced-%d", s.incarnation)
}

// setWAN sets every WAN proxy's mode.
func (s *soakSite) setWAN(m lab.FaultMode) {
	for _, p := range s.wan {
		p.SetMode(m)
	}
}

// logTails is the last lines of every applianced log.
func (s *soakSite) logTails(n int) string {
	var b strings.Builder
	s.mu.Lock()
	inc := s.incarnation
	s.mu.Unlock()
	for i := 1; i <= inc; i++ {
		path := filepath.Join(s.dir, fmt.Sprintf("applianced-%d.log", i))
		fmt.Fprintf(&b, "--- %s\n%s\n", path, lastLines(path, n))
	}
	return b.String()
}
