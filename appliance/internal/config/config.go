// Package config loads applianced's configuration: embedded defaults, then
// an optional YAML file, then command-line flags, then Validate.
package config

import (
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/pki"
)

//go:embed default.yaml
var defaultYAML []byte

// Config is the appliance's configuration.
type Config struct {
	// NodeID names this appliance in its cluster. It must be stable: a
	// node's Raft identity and data belong to it.
	NodeID string `json:"node_id"`
	// DataDir holds the store, the Raft log, snapshots, the site key and
	// the first admin token.
	DataDir string `json:"data_dir"`
	// APIAddr is where the API listens (host:port). On a loopback
	// address it serves plain HTTP; on any other (a wildcard included)
	// HTTPS with a certificate from the site's API CA, unless
	// InsecureHTTP is set or TLSCert names the operator's own.
	APIAddr string `json:"api_addr"`
	// APIURL is how other nodes and clients reach the API; derived from
	// APIAddr when empty (https:// unless the API serves plain HTTP).
	APIURL string `json:"api_url,omitempty"`
	// APIHosts are more names and addresses the API's serving
	// certificate names, beside APIURL's host, APIAddr's addresses and
	// the loopback names: a DNS name technicians use, a NAT's address.
	APIHosts []string `json:"api_hosts,omitempty"`
	// InsecureHTTP makes the API serve plain HTTP on a non-loopback
	// address: tokens, and the site key a join hands over (sealed with
	// the token), then cross the network in the clear. Logged as a
	// warning at start. For labs only.
	InsecureHTTP bool `json:"insecure_http,omitempty"`
	// RaftAddr is where the Raft transport listens (host:port).
	RaftAddr string `json:"raft_addr"`
	// RaftAdvertise is the Raft address other nodes dial; RaftAddr if empty.
	RaftAdvertise string `json:"raft_advertise,omitempty"`
	// Raft is how quickly the node gives up on a silent leader, and the
	// scheduling priority that keeps its heartbeats on time.
	Raft RaftConfig `json:"raft"`
	// Join is the API URL of a member of an existing cluster. A node with
	// no state and a Join address joins that cluster as a voter instead of
	// bootstrapping its own.
	Join string `json:"join,omitempty"`
	// JoinTokenFile holds an admin token of the cluster being joined.
	// The OUTPOST_JOIN_TOKEN environment variable may be used instead.
	JoinTokenFile string `json:"join_token_file,omitempty"`
	// JoinCAFingerprint is the site's API CA fingerprint (sha256:...,
	// printed by every node at start and by GET /v1/ca), required to
	// join an https:// Join URL: a joining node has no site key yet to
	// derive the CA from, so it verifies the member it asks by this pin
	// before it sends its token. Once it has the key, it checks that the
	// CA it derives is the one pinned.
	JoinCAFingerprint string `json:"join_ca_fingerprint,omitempty"`
	// DHCPInterfaces are the boot-network interfaces the DHCP server
	// answers on; none turns DHCP off.
	DHCPInterfaces []string `json:"dhcp_interfaces,omitempty"`
	// DHCPProxy makes the DHCP server a proxyDHCP server: boot information
	// only, for networks whose addresses another server hands out.
	DHCPProxy bool `json:"dhcp_proxy,omitempty"`
	// DHCP holds the DHCP server's hold and quarantine times and its
	// conflict probe.
	DHCP DHCPConfig `json:"dhcp"`
	// TFTPAddr is where the TFTP server listens (":69"); empty turns it off.
	TFTPAddr string `json:"tftp_addr,omitempty"`
	// BootAddr is where the boot HTTP service (iPXE scripts, kernels,
	// images) listens (":8080"); empty turns it off. Machines reach it at
	// the answering node's boot-network address and this port.
	BootAddr string `json:"boot_addr,omitempty"`
	// BootURL is the boot HTTP service's URL as machines reach it; new
	// workflows get it as the values boot_url and metadata_url. Derived
	// from BootAddr when that names an address; set it when BootAddr is
	// a wildcard.
	BootURL string `json:"boot_url,omitempty"`
	// MetadataLinkLocal makes the leader hold 169.254.169.254 on the
	// DHCP interfaces and serve the metadata service there on port 80,
	// where cloud-init looks by default (package linklocal). It takes
	// effect where dhcp_interfaces and boot_addr are set, and needs
	// CAP_NET_ADMIN and CAP_NET_RAW. On by default.
	MetadataLinkLocal bool `json:"metadata_link_local"`
	// ArtifactDir holds the boot artifacts `make images` builds: iPXE
	// binaries, installer kernels and initrds, OS images.
	ArtifactDir string `json:"artifact_dir"`
	// EFIBinary is the iPXE binary x86-64 UEFI firmware gets: ipxe.efi
	// (its own drivers) or snponly.efi (the firmware's network driver).
	EFIBinary string `json:"efi_binary"`
	// TLSCert and TLSKey, when both are set, are the API's certificate
	// and key (PEM), served on every address instead of the site API
	// CA's (loopback included).
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// APILimits are the API's deadlines and connection caps (see
	// httpserve.Limits for each field).
	APILimits httpserve.Limits `json:"api_limits"`
	// BootLimits are the boot HTTP service's (iPXE scripts, artifacts,
	// the agent API, metadata). Its caps leave room for a boot storm of
	// a thousand machines whose requests all come from one relay's
	// address.
	BootLimits httpserve.Limits `json:"boot_limits"`
	// TFTPMaxTransfers caps the TFTP transfers under way at once; a read
	// request past it is refused with a TFTP error, so that a flood of
	// requests cannot take the file descriptors (a socket and a file per
	// transfer) the other servers need. 0 is no cap.
	TFTPMaxTransfers int `json:"tftp_max_transfers"`
	// TFTPMaxWindow caps the window (RFC 7440 windowsize: blocks sent
	// per ACK) a TFTP client may ask for. 0 is the server's default
	// (tftp.DefaultMaxWindow, 64); 1 sends every client lock-step, for
	// firmware whose windowsize is broken; at most 65535.
	TFTPMaxWindow int `json:"tftp_max_window"`
	// BMC says how the appliance drives BMCs.
	BMC BMCConfig `json:"bmc"`
	// Discovery bounds what installers of machines the site does not
	// know can do (package provision).
	Discovery DiscoveryConfig `json:"discovery"`
	// CentralURL is where central serves the sync websocket (the nodes
	// of a replicated central, separated by commas): a wss:// URL, or
	// central's https:// base URL, to which the sync path (/v1/sync) is
	// appended. ws:// and http:// are refused unless InsecureCentral is
	// set. Empty (the default) turns sync off: the site runs on its own.
	CentralURL string `json:"central_url,omitempty"`
	// CentralCAFile holds the certificates (PEM) of the CAs that may sign
	// central's certificate, for a central whose CA is private (its own).
	// Empty: the system's roots. Central's certificate is always verified.
	CentralCAFile string `json:"central_ca_file,omitempty"`
	// CentralCAFingerprint pins central's API CA by its fingerprint
	// (sha256:..., which centrald prints at start): central's chain is
	// verified against that CA alone. With CentralCAFile, the file must
	// hold it.
	CentralCAFingerprint string `json:"central_ca_fingerprint,omitempty"`
	// InsecureCentral allows ws:// and http:// central URLs: the site's
	// credential, its events and the BMC passwords central sends then
	// cross the network in the clear, readable and forgeable by anyone
	// on the path. For labs only.
	InsecureCentral bool `json:"insecure_central,omitempty"`
	// SiteID is the site's id at central; required with CentralURL.
	SiteID string `json:"site_id,omitempty"`
	// SiteCredentialFile holds the site's credential, the token central
	// gave when the site was created; required with CentralURL. Keep it
	// mode 0600: it is never logged.
	SiteCredentialFile string `json:"site_credential_file,omitempty"`
	// ArtifactStore is the directory of this node's content-addressed
	// artifacts (package artifacts): every image the site's images
	// point at, pulled from central by the leader and copied from a
	// peer by the other nodes. Empty: <data_dir>/artifacts.
	ArtifactStore string `json:"artifact_store,omitempty"`
	// ArtifactGrace is how long a node keeps an artifact no image points
	// at any more before it removes it: an operator who moved a name by
	// mistake can move it back without a new transfer.
	ArtifactGrace conf.Duration `json:"artifact_grace"`
	// ArtifactWANLimit caps the bandwidth of the leader's pulls from
	// past the site (central, upstream URLs), in bytes per second
	// ("50MiB"); 0 is no cap. Copies between the site's nodes are not
	// capped.
	ArtifactWANLimit conf.ByteSize `json:"artifact_wan_limit,omitempty"`
	// Logging holds log_level (debug, info, warn or error) and
	// log_format (text or json).
	conf.Logging
}

// BMCConfig says how the appliance drives BMCs.
type BMCConfig struct {
	// JobTimeout bounds one execution of a BMC job, its retries
	// included; a job abandoned by a leader that died may start again
	// on another after it.
	JobTimeout conf.Duration `json:"job_timeout"`
	// CallTimeout bounds one call to a BMC.
	CallTimeout conf.Duration `json:"call_timeout"`
	// Attempts is how many times a failed call is tried, with backoff
	// and jitter between tries.
	Attempts int `json:"attempts"`
	// PollInterval is how often each machine's power state is read; 0
	// turns polling off.
	PollInterval conf.Duration `json:"poll_interval"`
	// Concurrency bounds the BMC operations in flight across the site.
	Concurrency int `json:"concurrency"`
	// CAFile holds the certificates (PEM) of the site's BMC CA: a Redfish
	// BMC certificate it issued for the BMC's address is trusted without
	// an operator accepting it. Empty (the default): a Redfish BMC gets
	// its password only once an operator has accepted its certificate
	// (POST /v1/machines/{id}/bmc/accept-certificate).
	CAFile string `json:"ca_file,omitempty"`
}

// DiscoveryConfig bounds discovery (package provision).
type DiscoveryConfig struct {
	// CredentialTTL is how long a discovery credential opens anything
	// after the iPXE script that carried it was served; a machine whose
	// installer waited longer for a workflow must boot again.
	CredentialTTL conf.Duration `json:"credential_ttl"`
	// Burst and Every limit the machines discovery creates, per subnet
	// of the reporting address: Burst at once, then one every Every.
	// Reports over the limit get 429, and the installer retries them.
	Burst int           `json:"burst"`
	Every conf.Duration `json:"every"`
}

// DHCPConfig is how long the DHCP server holds and withholds addresses,
// and how it probes for hosts it does not know (package dhcp's Config).
type DHCPConfig struct {
	// OfferHold is how long an offered address is kept for the client
	// it was offered to (committed as an offered lease, so a new leader
	// keeps it too). 1s to 10m.
	OfferHold conf.Duration `json:"offer_hold"`
	// DeclineQuarantine is how long an address a client DECLINEd (it
	// found the address in use) stays out of the pool. 1s to 30 days.
	DeclineQuarantine conf.Duration `json:"decline_quarantine"`
	// ProbeWait is how long the server waits for an answer to its ARP
	// probe (RFC 5227) of an address no lease holds before it offers it;
	// 0 turns probing off. Only subnets on a served interface's link
	// are probed. At most 2s: the probe delays the offer.
	ProbeWait conf.Duration `json:"probe_wait"`
	// ConflictQuarantine is how long an address a host answered a probe
	// for stays out of the pool, for every client (event
	// dhcp.address_conflict). 1s to 30 days.
	ConflictQuarantine conf.Duration `json:"conflict_quarantine"`
}

// RaftConfig is the node's Raft failure detection (raftnode.Timing).
type RaftConfig struct {
	// HeartbeatTimeout is how long a follower goes without hearing from
	// its leader before it looks for another (an election follows if a
	// quorum has lost the leader too); it is also the election timeout and
	// the leader's lease, and the leader sends heartbeats ten to five
	// times as often. A site's DHCP answers again within about twice this
	// after its leader dies. Every node of a site should have the same.
	// Default 1s (raftnode.LANTiming): shorter ones let a busy host's
	// idle site change leaders (outpost-bench raft.idle); LeaderProbe
	// makes failover fast instead. 50ms to 10s.
	HeartbeatTimeout conf.Duration `json:"heartbeat_timeout"`
	// LeaderProbe is how long a follower goes without hearing from its
	// leader before it connects to the leader's Raft port to see whether
	// anything listens there (raftnode.Probe): when the connection is
	// refused the leader's process is dead, and the follower starts an
	// election at once instead of waiting HeartbeatTimeout. A leader
	// whose process is merely slow, its kernel accepting, is left alone.
	// Default 250ms (raftnode.LANProbe), past the longest gap between
	// heartbeats (HeartbeatTimeout/5); 0 disables the probe; at most
	// HeartbeatTimeout.
	LeaderProbe conf.Duration `json:"leader_probe"`
	// LeaderProbeTimeout is how long a probe waits for the leader's
	// kernel to answer. Default 250ms; 10ms to 10s.
	LeaderProbeTimeout conf.Duration `json:"leader_probe_timeout"`
	// Nice is the scheduling priority (nice value, -20 to 19) applianced
	// gives itself at start, all its threads included: a node whose
	// threads wait for a CPU for longer than HeartbeatTimeout, on a host
	// other work keeps busy, sends its heartbeats late and its followers
	// elect another leader (outpost-bench raft.idle). Below the inherited
	// value it needs root or CAP_SYS_NICE; without, the node warns and
	// keeps the inherited priority. Default -10, as cluster daemons whose
	// membership runs on heartbeats (corosync, which goes further, to a
	// real-time class) are run; 0 leaves the priority as inherited.
	Nice int `json:"nice"`
}

// validate checks each of the DHCP times against its range, naming the
// key that is out of it.
func (d DHCPConfig) validate() []error {
	const day = 24 * time.Hour
	var errs []error
	for _, r := range []struct {
		key      string
		v        conf.Duration
		min, max time.Duration
	}{
		{"dhcp.offer_hold", d.OfferHold, time.Second, 10 * time.Minute},
		{"dhcp.decline_quarantine", d.DeclineQuarantine, time.Second, 30 * day},
		{"dhcp.probe_wait", d.ProbeWait, 0, 2 * time.Second},
		{"dhcp.conflict_quarantine", d.ConflictQuarantine, time.Second, 30 * day},
	} {
		if v := time.Duration(r.v); v < r.min || v > r.max {
			errs = append(errs, fmt.Errorf("%s %v: must be within %v..%v", r.key, v, r.min, r.max))
		}
	}
	return errs
}

// Default returns the embedded defaults.
func Default() *Config {
	c := &Config{}
	if err := yaml.UnmarshalStrict(defaultYAML, c); err != nil {
		panic("config: embedded defaults: " + err.Error())
	}
	return c
}

// Load builds the configuration from the defaults, the file named by
// -config (if any) and the other flags in args.
func Load(args []string) (*Config, error) {
	c := Default()
	fs := flag.NewFlagSet("applianced", flag.ContinueOnError)
	fs.StringVar(&c.NodeID, "id", c.NodeID, "node ID, unique within the site")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory")
	fs.StringVar(&c.APIAddr, "api-addr", c.APIAddr, "API listen address")
	fs.StringVar(&c.APIURL, "api-url", c.APIURL, "API URL advertised to other nodes")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "Raft listen address")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "Raft address advertised to other nodes")
	fs.Var(&c.Raft.HeartbeatTimeout, "raft-heartbeat-timeout", "how long a follower waits for its leader before it seeks another (election timeout and leader lease too)")
	fs.Var(&c.Raft.LeaderProbe, "raft-leader-probe", "how long a follower waits for its leader before it probes the leader's Raft port (0: never)")
	fs.Var(&c.Raft.LeaderProbeTimeout, "raft-leader-probe-timeout", "how long a probe of the leader's Raft port waits for an answer")
	fs.IntVar(&c.Raft.Nice, "nice", c.Raft.Nice, "scheduling priority (nice value) applianced sets itself at start: -20..19, 0 keeps the inherited")
	fs.StringVar(&c.Join, "join", c.Join, "API URL of a member of the cluster to join")
	fs.StringVar(&c.JoinTokenFile, "join-token-file", c.JoinTokenFile, "file holding an admin token of the cluster to join")
	fs.StringVar(&c.JoinCAFingerprint, "join-ca-fingerprint", c.JoinCAFingerprint, "API CA fingerprint (sha256:...) of the cluster to join, for an https:// -join URL")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "serve the API over plain HTTP on a non-loopback address: tokens in clear; for labs only")
	fs.Func("api-host", "another name or address for the API's certificate (repeatable)", func(v string) error {
		c.APIHosts = append(c.APIHosts, v)
		return nil
	})
	fs.Func("dhcp-interface", "serve DHCP on this interface (repeatable)", func(v string) error {
		c.DHCPInterfaces = append(c.DHCPInterfaces, v)
		return nil
	})
	fs.BoolVar(&c.DHCPProxy, "dhcp-proxy", c.DHCPProxy, "answer as a proxyDHCP server (boot information only)")
	fs.Var(&c.DHCP.ProbeWait, "dhcp-probe-wait", "how long DHCP waits for an ARP answer before offering an unleased address (0: no probe)")
	fs.StringVar(&c.TFTPAddr, "tftp-addr", c.TFTPAddr, "TFTP listen address (empty: off)")
	fs.StringVar(&c.BootAddr, "boot-addr", c.BootAddr, "boot HTTP listen address (empty: off)")
	fs.BoolVar(&c.MetadataLinkLocal, "metadata-link-local", c.MetadataLinkLocal, "on the leader, serve metadata on 169.254.169.254:80 of the DHCP interfaces")
	fs.Var(&c.BMC.JobTimeout, "bmc-job-timeout", "bound of one execution of a BMC job, retries included")
	fs.Var(&c.BMC.CallTimeout, "bmc-call-timeout", "bound of one call to a BMC")
	fs.IntVar(&c.BMC.Attempts, "bmc-attempts", c.BMC.Attempts, "tries of a failed BMC call")
	fs.Var(&c.BMC.PollInterval, "bmc-poll-interval", "how often power states are read (0: never)")
	fs.IntVar(&c.BMC.Concurrency, "bmc-concurrency", c.BMC.Concurrency, "BMC operations in flight across the site")
	fs.StringVar(&c.BMC.CAFile, "bmc-ca-file", c.BMC.CAFile, "PEM file of the site's BMC CA (Redfish certificates it issued need no acceptance)")
	fs.StringVar(&c.CentralURL, "central-url", c.CentralURL, "central's sync URL (wss:// or https://; empty: sync off)")
	fs.StringVar(&c.CentralCAFile, "central-ca-file", c.CentralCAFile, "PEM file of the CAs that sign central's certificate (default: the system's)")
	fs.StringVar(&c.CentralCAFingerprint, "central-ca-fingerprint", c.CentralCAFingerprint, "central's API CA fingerprint (sha256:...): verify central against it alone")
	fs.BoolVar(&c.InsecureCentral, "insecure-central", c.InsecureCentral, "allow ws:// and http:// central URLs: credentials and secrets in clear; for labs only")
	fs.StringVar(&c.SiteID, "site-id", c.SiteID, "the site's id at central")
	fs.StringVar(&c.SiteCredentialFile, "site-credential-file", c.SiteCredentialFile, "file holding the site's credential for central")
	fs.StringVar(&c.BootURL, "boot-url", c.BootURL, "boot HTTP URL machines reach (default: from -boot-addr unless a wildcard)")
	fs.StringVar(&c.ArtifactDir, "artifact-dir", c.ArtifactDir, "directory of boot artifacts")
	fs.StringVar(&c.ArtifactStore, "artifact-store", c.ArtifactStore, "directory of this node's content-addressed artifacts (default: <data-dir>/artifacts)")
	fs.Var(&c.ArtifactGrace, "artifact-grace", "how long an artifact no image points at is kept")
	fs.Var(&c.ArtifactWANLimit, "artifact-wan-limit", "bandwidth cap of the leader's pulls from central, bytes per second (50MiB; 0: none)")
	c.AddFlags(fs)
	if err := conf.Load(fs, args, c); err != nil {
		return nil, err
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) fill() {
	if c.APIURL == "" {
		scheme := "https"
		if c.TLSCert == "" && c.PlainAPI() {
			scheme = "http"
		}
		c.APIURL = scheme + "://" + advertisable(c.APIAddr)
	}
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = advertisable(c.RaftAddr)
	}
	if c.BootURL == "" && c.BootAddr != "" {
		if host, _, err := net.SplitHostPort(c.BootAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				c.BootURL = "http://" + c.BootAddr
			}
		}
	}
}

// PlainAPI reports whether the API listens where it serves plain HTTP
// without the operator's certificate: a loopback address, or any with
// insecure_http.
func (c *Config) PlainAPI() bool {
	host, _, err := net.SplitHostPort(c.APIAddr)
	return c.InsecureHTTP || err == nil && httpserve.HostIsLoopback(host)
}

// advertisable turns a wildcard listen address into one a peer can dial.
func advertisable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

var nodeIDRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)

// Validate checks the configuration and names the field at fault.
func (c *Config) Validate() error {
	var errs []error
	if !nodeIDRE.MatchString(c.NodeID) {
		errs = append(errs, fmt.Errorf("node_id %q: use 1-63 lowercase letters, digits, '.', '_' or '-'", c.NodeID))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	switch b := c.BMC; {
	case b.JobTimeout <= 0 || b.CallTimeout <= 0:
		errs = append(errs, errors.New("bmc.job_timeout and bmc.call_timeout must be positive"))
	case b.Attempts < 1 || b.Concurrency < 1:
		errs = append(errs, errors.New("bmc.attempts and bmc.concurrency must be at least 1"))
	case b.PollInterval < 0:
		errs = append(errs, errors.New("bmc.poll_interval must not be negative"))
	}
	if d := c.Discovery; d.CredentialTTL <= 0 || d.Every <= 0 || d.Burst < 1 {
		errs = append(errs, errors.New("discovery.credential_ttl and discovery.every must be positive, discovery.burst at least 1"))
	}
	for name, v := range map[string]string{"api_addr": c.APIAddr, "raft_addr": c.RaftAddr, "raft_advertise": c.RaftAdvertise} {
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", name, v, err))
		}
	}
	for name, v := range map[string]string{"api_url": c.APIURL, "join": c.Join, "boot_url": c.BootURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q: want an http(s) URL", name, v))
		}
	}
	errs = append(errs, c.validateSync()...)
	if err := httpserve.CheckJoin(c.Join, c.JoinCAFingerprint, c.InsecureHTTP, false); err != nil {
		errs = append(errs, err)
	}
	for name, v := range map[string]string{"tftp_addr": c.TFTPAddr, "boot_addr": c.BootAddr} {
		if v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", name, v, err))
		}
	}
	if len(c.DHCPInterfaces) > 0 && c.BootAddr == "" {
		errs = append(errs, errors.New("dhcp_interfaces needs boot_addr: the DHCP server hands out URLs of the boot HTTP service"))
	}
	switch c.EFIBinary {
	case "ipxe.efi", "snponly.efi":
	default:
		errs = append(errs, fmt.Errorf("efi_binary %q: want ipxe.efi or snponly.efi", c.EFIBinary))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert and tls_key go together"))
	}
	if _, err := c.BMCRoots(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.CentralRoots(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.APILimits.Validate("api_limits")...)
	errs = append(errs, c.BootLimits.Validate("boot_limits")...)
	if c.ArtifactGrace <= 0 {
		errs = append(errs, fmt.Errorf("artifact_grace %v: must be positive", c.ArtifactGrace))
	}
	if c.ArtifactWANLimit < 0 {
		errs = append(errs, errors.New("artifact_wan_limit must not be negative"))
	}
	errs = append(errs, c.DHCP.validate()...)
	if d := time.Duration(c.Raft.HeartbeatTimeout); d < 50*time.Millisecond || d > 10*time.Second {
		errs = append(errs, fmt.Errorf("raft.heartbeat_timeout %v: must be within 50ms..10s", d))
	}
	if d := time.Duration(c.Raft.LeaderProbe); d < 0 || d > time.Duration(c.Raft.HeartbeatTimeout) {
		errs = append(errs, fmt.Errorf("raft.leader_probe %v: must be within 0..raft.heartbeat_timeout (%v)", d, time.Duration(c.Raft.HeartbeatTimeout)))
	}
	if d := time.Duration(c.Raft.LeaderProbeTimeout); d < 10*time.Millisecond || d > 10*time.Second {
		errs = append(errs, fmt.Errorf("raft.leader_probe_timeout %v: must be within 10ms..10s", d))
	}
	if c.Raft.Nice < -20 || c.Raft.Nice > 19 {
		errs = append(errs, fmt.Errorf("raft.nice %d: must be in -20..19", c.Raft.Nice))
	}
	if c.TFTPMaxTransfers < 0 {
		errs = append(errs, errors.New("tftp_max_transfers must not be negative"))
	}
	if c.TFTPMaxWindow < 0 || c.TFTPMaxWindow > 65535 {
		errs = append(errs, fmt.Errorf("tftp_max_window %d: must be in 0..65535", c.TFTPMaxWindow))
	}
	errs = append(errs, c.Logging.Validate()...)
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// validateSync checks the sync settings, which are all or nothing.
func (c *Config) validateSync() []error {
	if c.CentralURL == "" {
		if c.SiteID != "" || c.SiteCredentialFile != "" {
			return []error{errors.New("site_id and site_credential_file need central_url")}
		}
		return nil
	}
	var errs []error
	if c.CentralCAFingerprint != "" {
		if _, err := c.CentralTLS(); err != nil {
			errs = append(errs, fmt.Errorf("central_ca_fingerprint: %w", err))
		}
	}
	for _, raw := range strings.Split(c.CentralURL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		switch {
		case err != nil || u.Host == "" || !slices.Contains([]string{"ws", "wss", "http", "https"}, u.Scheme):
			errs = append(errs, fmt.Errorf("central_url %q: want wss:// or https:// URLs, separated by commas", raw))
		case u.User != nil:
			errs = append(errs, errors.New("central_url: must not hold credentials (use site_credential_file)"))
		case (u.Scheme == "ws" || u.Scheme == "http") && !c.InsecureCentral:
			errs = append(errs, fmt.Errorf("central_url %q: %s:// sends the site's credential and BMC passwords in the clear; "+
				"use wss:// or https:// (central_ca_file for a private CA), or set insecure_central (-insecure-central), for labs only", raw, u.Scheme))
		}
	}
	if !nodeIDRE.MatchString(c.SiteID) {
		errs = append(errs, fmt.Errorf("site_id %q: use 1-63 lowercase letters, digits, '.', '_' or '-' (required with central_url)", c.SiteID))
	}
	if c.SiteCredentialFile == "" {
		errs = append(errs, errors.New("site_credential_file is required with central_url"))
	}
	return errs
}

// BMCRoots is the pool of bmc.ca_file's certificates; nil if it is not
// set.
func (c *Config) BMCRoots() (*x509.CertPool, error) { return certPool("bmc.ca_file", c.BMC.CAFile) }

// CentralRoots is the pool of central_ca_file's certificates; nil (the
// system's roots) if it is not set.
func (c *Config) CentralRoots() (*x509.CertPool, error) {
	return certPool("central_ca_file", c.CentralCAFile)
}

// CentralTLS is the TLS client configuration that pins central's API CA
// (central_ca_fingerprint, with central_ca_file if set); nil without a
// fingerprint (CentralRoots then).
func (c *Config) CentralTLS() (*tls.Config, error) {
	if c.CentralCAFingerprint == "" {
		return nil, nil
	}
	var pem []byte
	if c.CentralCAFile != "" {
		var err error
		if pem, err = os.ReadFile(c.CentralCAFile); err != nil {
			return nil, fmt.Errorf("central_ca_file: %w", err)
		}
	}
	return pki.PinnedTLS(c.CentralCAFingerprint, pem)
}

// certPool reads the PEM certificates of the file named by field; none
// is an error.
func certPool(field, path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", field, path)
	}
	return pool, nil
}

// Paths inside the data directory.
func (c *Config) StorePath() string      { return filepath.Join(c.DataDir, "store.db") }
func (c *Config) RaftDir() string        { return filepath.Join(c.DataDir, "raft") }
func (c *Config) SiteKeyPath() string    { return filepath.Join(c.DataDir, "site.key") }
func (c *Config) AdminTokenPath() string { return filepath.Join(c.DataDir, "admin.token") }

// SpansPath is the node's span store (internal/tracing): the spans it
// recorded and its agents sent it, bounded, never replicated.
func (c *Config) SpansPath() string { return filepath.Join(c.DataDir, "spans.db") }

// ArtifactStorePath is the directory of the node's artifacts:
// artifact_store, or <data_dir>/artifacts.
func (c *Config) ArtifactStorePath() string {
	if c.ArtifactStore != "" {
		return c.ArtifactStore
	}
	return filepath.Join(c.DataDir, "artifacts")
}

// CentralBases are central's HTTPS base URLs, one per node of
// central_url: ws:// and wss:// become http:// and https://, and the
// sync path is dropped. The site pulls its artifacts from them.
func (c *Config) CentralBases() []string {
	var out []string
	for _, raw := range strings.Split(c.CentralURL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			continue
		}
		switch u.Scheme {
		case "ws":
			u.Scheme = "http"
		case "wss":
			u.Scheme = "https"
		}
		u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1/sync")
		u.RawPath, u.RawQuery, u.Fragment = "", "", ""
		out = append(out, strings.TrimSuffix(u.String(), "/"))
	}
	return out
}

// APICAPath is where the node writes the site API CA's certificate (PEM,
// mode 0644) for clients to trust.
func (c *Config) APICAPath() string { return filepath.Join(c.DataDir, "api-ca.pem") }
