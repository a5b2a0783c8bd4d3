// Package labsite runs an Outpost site in a lab: applianced on a bridge in
// a network namespace of its own, serving DHCP, TFTP, boot HTTP, the agent
// API and metadata there, with VMs on taps of the bridge. The provisioning
// tests, the demo `make run` starts and the provisioning benchmark all
// drive a site through it, with the real binaries and the real protocols.
package labsite

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
)

// The site's boot network: a bridge in the site's namespace, where
// applianced listens at ServerIP.
const (
	Bridge   = "br0"
	ServerIP = "198.18.0.1"
	APIAddr  = ServerIP + ":7080"
	BootAddr = ServerIP + ":8080"
	TFTPAddr = ServerIP + ":69"
	BootURL  = "http://" + BootAddr
	// APIURL is the API's: HTTPS, as on every address but loopback,
	// with a certificate from the site's API CA (CAFile).
	APIURL = "https://" + APIAddr
)

// Config configures a site.
type Config struct {
	// Applianced is the path of the applianced binary.
	Applianced string
	// Images are the boot artifacts (lab.BuildImages); applianced serves
	// their directory.
	Images lab.Images
	// LogLevel is applianced's; default "debug".
	LogLevel string
	// Proxy runs applianced as a proxyDHCP server (boot information
	// only; another server hands out addresses).
	Proxy bool
	// Args are more flags for applianced.
	Args []string
	// Sync, if set, makes the site sync with a central.
	Sync *Sync
}

// Sync is how a site syncs with central: as SiteID, which Start creates
// at Central, through a WAN the test can cut (Site.WAN): a fault proxy
// in the site's namespace, on its loopback, which dials Central from the
// test's own. Central's certificate (StartCentralTLS issues it for
// 127.0.0.1) is verified through the proxy.
type Sync struct {
	Central *Central
	SiteID  string
}

// Site is one applianced serving a lab boot network. Everything it
// starts goes away with t's cleanup.
type Site struct {
	NS     *lab.Netns
	API    *client.Client
	Images lab.Images
	// Token is the admin token.
	Token string
	// WAN is the site's link to central (Config.Sync): SetMode(lab.Refuse)
	// cuts it, SetMode(lab.Pass) heals it. Nil without Sync.
	WAN *lab.FaultProxy

	cfg     Config
	dataDir string
	proc    *lab.Process
	taps    int
}

// Start builds the boot network and starts applianced on it, and returns
// once it leads its single-node cluster (only the leader answers DHCP).
func Start(t lab.T, cfg Config) *Site {
	t.Helper()
	lab.Require(t, "root", "ip")
	if cfg.LogLevel == "" {
		cfg.LogLevel = "debug"
	}
	ns := lab.NewNetns(t, "site")
	ns.Bridge(Bridge, ServerIP+"/24")
	// iPXE configures IPv6 alongside DHCPv4 and, with no router on the
	// link, waits ~15 s for router advertisements before it boots.
	ns.AnswerRouterSolicitations(t, Bridge)
	s := &Site{NS: ns, Images: cfg.Images, cfg: cfg, dataDir: filepath.Join(t.TempDir(), "n1")}
	if cfg.Sync != nil {
		s.connect(t, cfg.Sync)
	}
	s.start(t)
	s.Token = s.waitToken(t)
	s.API = client.NewWithHTTP(APIURL, s.Token, ns.HTTPSClient(s.PinnedTLS(t)))
	s.WaitLeader(t)
	return s
}

// connect starts the site's WAN proxy and adds the flags that sync the
// site with central through it.
func (s *Site) connect(t lab.T, sync *Sync) {
	t.Helper()
	cen := sync.Central
	s.WAN = lab.StartFaultProxyIn(t, s.NS, "127.0.0.1:0", cen.Addr)
	scheme, _, _ := strings.Cut(cen.URL, "://")
	args := cen.SyncArgs(scheme+"://"+s.WAN.Addr, sync.SiteID, cen.NewSite(sync.SiteID))
	s.cfg.Args = append(slices.Clip(s.cfg.Args), args...)
}

func (s *Site) start(t lab.T) {
	t.Helper()
	args := []string{
		s.cfg.Applianced,
		"-id", "n1",
		"-data-dir", s.dataDir,
		"-api-addr", APIAddr,
		"-raft-addr", "127.0.0.1:7081", // the namespace's own loopback
		"-dhcp-interface", Bridge,
		"-boot-addr", BootAddr,
		"-tftp-addr", TFTPAddr,
		"-artifact-dir", s.Images.Dir,
		"-log-level", s.cfg.LogLevel,
	}
	if s.cfg.Proxy {
		args = append(args, "-dhcp-proxy")
	}
	args = append(args, s.cfg.Args...)
	s.proc = lab.StartProcess(t, lab.ProcessConfig{Name: "applianced", Netns: s.NS, Args: args})
}

// CAFile is the site API CA's certificate (PEM), as applianced wrote
// it to its data directory at start.
func (s *Site) CAFile() string { return filepath.Join(s.dataDir, "api-ca.pem") }

// PinnedTLS is the TLS configuration of a client that pins the site's
// API CA (CAFile).
func (s *Site) PinnedTLS(t lab.T) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatalf("labsite: the API CA: %v", err)
	}
	tc, err := pki.PinnedTLS("", pem)
	if err != nil {
		t.Fatalf("labsite: the API CA: %v", err)
	}
	return tc
}

// Process is the running applianced.
func (s *Site) Process() *lab.Process { return s.proc }

// Restart stops applianced (SIGTERM, or SIGKILL if kill) and starts it
// again on the same data directory, and returns once it leads again.
func (s *Site) Restart(t lab.T, kill bool) {
	t.Helper()
	if kill {
		s.proc.Kill()
	} else {
		s.proc.Signal(syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.proc.Wait(ctx); err != nil {
			s.proc.Kill()
		}
	}
	s.start(t)
	s.WaitLeader(t)
}

// Reconfigure restarts applianced with more flags, once the site exists
// (a peer in its namespace may need to be set up first).
func (s *Site) Reconfigure(t lab.T, args ...string) {
	t.Helper()
	s.cfg.Args = append(s.cfg.Args, args...)
	s.Restart(t, false)
}

// waitToken waits for the first admin token and returns it.
func (s *Site) waitToken(t lab.T) string {
	t.Helper()
	var token string
	s.waitFor(t, 60*time.Second, "the admin token", func() error {
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("applianced exited: %v", s.proc.Err())
		default:
		}
		var err error
		token, err = AdminToken(s.dataDir)
		return err
	})
	return token
}

// AdminToken reads the first admin token that a node bootstrapping
// wrote into its data directory, once the file is whole.
func AdminToken(dataDir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(string(raw), "\n") {
		return "", errors.New("token file not complete yet")
	}
	return strings.TrimSpace(string(raw)), nil
}

// WaitLeader waits until applianced leads its cluster.
func (s *Site) WaitLeader(t lab.T) {
	t.Helper()
	s.waitFor(t, 60*time.Second, "applianced to lead", func() error {
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("applianced exited: %v", s.proc.Err())
		default:
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		st, err := s.API.Cluster(ctx)
		if err != nil {
			return err
		}
		if st.LeaderID != "n1" {
			return fmt.Errorf("leader %q", st.LeaderID)
		}
		return nil
	})
}

// waitFor polls cond every 100ms until it returns nil, failing t with
// cond's last error after timeout.
func (s *Site) waitFor(t lab.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(t.Context(), timeout, cond); err != nil {
		t.Fatalf("labsite: waiting for %s: %v", what, err)
	}
}

// Poll calls cond every 100ms until it returns nil, ctx ends or timeout
// passes, and returns cond's last error in the latter cases.
func Poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Put stores objects through the API, as an operator would, in order.
func (s *Site) Put(t lab.T, objs ...store.Object) {
	t.Helper()
	for _, o := range objs {
		if err := s.API.Put(t.Context(), o.Kind()+"s", o.Key(), o, nil); err != nil {
			t.Fatalf("labsite: put %s %s: %v", o.Kind(), o.Key(), err)
		}
	}
}

// Machine reads a machine.
func (s *Site) Machine(ctx context.Context, id string) (*store.Machine, error) {
	var m store.Machine
	err := s.API.Get(ctx, "machines", id, &m)
	return &m, err
}

// Workflow reads a workflow.
func (s *Site) Workflow(ctx context.Context, id string) (*store.Workflow, error) {
	var w store.Workflow
	err := s.API.Get(ctx, "workflows", id, &w)
	return &w, err
}

// Events returns every event recorded so far, oldest first.
func (s *Site) Events(ctx context.Context) ([]store.Event, error) {
	var all []store.Event
	var since uint64
	for {
		batch, _, err := s.API.Events(ctx, since, 1000)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			return all, nil
		}
		all = append(all, batch...)
		since = batch[len(batch)-1].Seq
	}
}

// StartVM starts a VM on a new tap of the bridge. Unless cfg says
// NoReboot, a reboot of the guest goes through its firmware again, as a
// server's does.
func (s *Site) StartVM(t lab.T, cfg lab.VMConfig) *lab.VM {
	t.Helper()
	cfg.Tap = s.NewTap(t)
	return lab.StartVM(t, s.NS, cfg)
}

// NewTap adds a tap device to the bridge, for a VM, and returns its name.
func (s *Site) NewTap(t lab.T) string {
	t.Helper()
	s.taps++
	tap := fmt.Sprintf("tap%d", s.taps)
	s.NS.Tap(tap, Bridge)
	return tap
}

// NewDisk creates an empty (sparse) disk image of size bytes under t's
// temporary directory.
func NewDisk(t lab.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

// AttachHost creates a namespace joined to the bridge by a veth pair: its
// end is eth0, with address mac and, unless cidr is "", that address. It
// is one more host on the boot network's link.
func (s *Site) AttachHost(t lab.T, name, mac, cidr string) *lab.Netns {
	t.Helper()
	s.taps++
	host := lab.NewNetns(t, name)
	peer := fmt.Sprintf("vh%d", s.taps)
	s.NS.VethPair(t, host, peer, "", "eth0", "")
	ip := func(ns *lab.Netns, args ...string) {
		t.Helper()
		if out, err := ns.Run(t.Context(), "ip", args...); err != nil {
			t.Fatalf("labsite: ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip(s.NS, "link", "set", peer, "master", Bridge)
	ip(host, "link", "set", "eth0", "down")
	ip(host, "link", "set", "eth0", "address", mac)
	if cidr != "" {
		ip(host, "addr", "add", cidr, "dev", "eth0")
	}
	ip(host, "link", "set", "eth0", "up")
	return host
}
