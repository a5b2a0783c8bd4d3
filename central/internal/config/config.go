// Package config loads centrald's configuration: defaults, then an
// optional YAML file, then command-line flags, then Validate.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"time"

	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/syncproto"
)

// Defaults.
const (
	DefaultDataDir      = "./var/central"
	DefaultAddr         = "127.0.0.1:7443"
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxConns and DefaultMaxConnsPerSource cap the connections
	// of the API and sync listener. Every connected site holds one: the
	// cap leaves room for 10,000 sites (BENCH sync.sites) three times
	// over, with the API's clients. The process's open-file limit must
	// be above it (Go raises the soft limit to the hard one at start;
	// systemd's hard default is 524288).
	DefaultMaxConns          = 32768
	DefaultMaxConnsPerSource = 1024
	// DefaultMaxArtifactSize bounds an artifact's upload.
	DefaultMaxArtifactSize = 64 << 30
	// DefaultUploadTimeout bounds an artifact's upload as a whole: a
	// 64 GiB image over a link of 10 MiB/s takes under two hours. An
	// upload that stalls is cut far sooner (httpserve.MinProgress in
	// every body_timeout).
	DefaultUploadTimeout = 12 * time.Hour
)

// Config is central's configuration.
type Config struct {
	// DataDir holds the store, the first admin token and the node's
	// copy of every artifact (artifacts/).
	DataDir string `json:"data_dir"`
	// Addr is where the API and the sync websocket listen (host:port).
	// On a loopback address they are plain HTTP and ws://; on any other
	// (a wildcard included) HTTPS and wss:// with a certificate from
	// central's API CA, unless InsecureHTTP is set or TLSCert names the
	// operator's own.
	Addr string `json:"addr"`
	// APIHosts are more names and addresses the serving certificate
	// names, beside APIURL's host, Addr's addresses and the loopback
	// names: the DNS name sites and operators use.
	APIHosts []string `json:"api_hosts,omitempty"`
	// InsecureHTTP serves plain HTTP and ws:// on a non-loopback Addr:
	// tokens, site credentials and BMC passwords then cross the network
	// in the clear. Logged as a warning at start. For labs only.
	InsecureHTTP bool `json:"insecure_http,omitempty"`
	// TLSCert and TLSKey, when both are set, are the certificate and
	// key (PEM) central serves on every address instead of its API CA's.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// Heartbeat is the heartbeat interval of every site connection
	// (syncproto.MinHeartbeat to syncproto.MaxHeartbeat).
	Heartbeat conf.Duration `json:"heartbeat"`
	// WriteTimeout bounds every write to a site: a site that does not
	// take a message in time loses its connection.
	WriteTimeout conf.Duration `json:"write_timeout"`
	// RaftAddr, when set, makes central one node of a Raft cluster
	// listening there (host:port) for its peers; empty runs a single
	// node with no Raft at all.
	RaftAddr string `json:"raft_addr,omitempty"`
	// RaftAdvertise is the Raft address peers dial; RaftAddr if empty.
	RaftAdvertise string `json:"raft_advertise,omitempty"`
	// NodeID names this node in the cluster (with RaftAddr).
	NodeID string `json:"node_id,omitempty"`
	// APIURL is the URL peers send this node's requests to while it
	// leads; <scheme>://<addr> if empty.
	APIURL string `json:"api_url,omitempty"`
	// Join is the API URL of a member of the cluster this new node
	// joins; empty bootstraps a new cluster (with RaftAddr).
	Join string `json:"join,omitempty"`
	// JoinTokenFile holds an admin token of the cluster to join (or set
	// OUTPOST_CENTRAL_JOIN_TOKEN).
	JoinTokenFile string `json:"join_token_file,omitempty"`
	// JoinCAFingerprint is central's API CA fingerprint (sha256:...,
	// printed by every node at start), required to join an https://
	// Join URL: a joining node has no key yet to derive the CA from, so
	// it verifies the member it sends its token to by this pin.
	JoinCAFingerprint string `json:"join_ca_fingerprint,omitempty"`
	// Limits are the deadlines and connection caps of the API and sync
	// listener (see httpserve.Limits for each field). The caps leave
	// room for every site of a large fleet, several behind one address.
	Limits httpserve.Limits `json:"limits"`
	// MaxPendingHandshakes bounds the sync connections not yet
	// authenticated; one more is answered 503 with Retry-After.
	MaxPendingHandshakes int `json:"max_pending_handshakes"`
	// MaxArtifactSize is the largest artifact an operator may upload
	// (POST /v1/artifacts), in bytes. The upload may take up to
	// limits.upload_timeout, as long as it keeps arriving.
	MaxArtifactSize int64 `json:"max_artifact_size"`
	// ArtifactUpstreamLimit caps the bandwidth of the leader's fetches of
	// registered upstream URLs (POST /v1/artifacts/register), in bytes
	// per second ("50MiB"); 0 is no cap. Uploads and the sites' pulls are
	// not capped here: a site caps its own (artifact_wan_limit).
	ArtifactUpstreamLimit conf.ByteSize `json:"artifact_upstream_limit,omitempty"`
	// Logging holds log_level (debug, info, warn or error) and
	// log_format (text or json).
	conf.Logging
}

// Default returns the defaults.
func Default() *Config {
	limits := httpserve.DefaultLimits(DefaultMaxConns, DefaultMaxConnsPerSource)
	limits.UploadTimeout = conf.Duration(DefaultUploadTimeout)
	return &Config{
		DataDir:              DefaultDataDir,
		Addr:                 DefaultAddr,
		Heartbeat:            conf.Duration(syncproto.DefaultHeartbeat),
		WriteTimeout:         conf.Duration(DefaultWriteTimeout),
		Limits:               limits,
		MaxPendingHandshakes: hub.DefaultMaxPending,
		MaxArtifactSize:      DefaultMaxArtifactSize,
		Logging:              conf.Logging{LogLevel: "info", LogFormat: "text"},
	}
}

// Load builds the configuration from the defaults, the file named by
// -config (if any) and the other flags in args.
func Load(args []string) (*Config, error) {
	c := Default()
	fs := flag.NewFlagSet("centrald", flag.ContinueOnError)
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory")
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address of the API and the sync websocket")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate file (with -tls-key: serve HTTPS and WSS)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS key file")
	fs.Var(&c.Heartbeat, "heartbeat", "heartbeat interval of site connections")
	fs.Var(&c.WriteTimeout, "write-timeout", "bound of every write to a site")
	fs.Var(&c.ArtifactUpstreamLimit, "artifact-upstream-limit", "bandwidth cap of fetches of registered upstream URLs, bytes per second (50MiB; 0: none)")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "Raft listen address (host:port); empty: a single node, no Raft")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "Raft address peers dial (default: -raft-addr)")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "this node's name in the cluster")
	fs.StringVar(&c.APIURL, "api-url", c.APIURL, "URL peers reach this node's API at (default: <scheme>://<addr>)")
	fs.StringVar(&c.Join, "join", c.Join, "API URL of a member of the cluster to join")
	fs.StringVar(&c.JoinTokenFile, "join-token-file", c.JoinTokenFile, "file holding an admin token of the cluster to join")
	fs.StringVar(&c.JoinCAFingerprint, "join-ca-fingerprint", c.JoinCAFingerprint, "API CA fingerprint (sha256:...) of the cluster to join, for an https:// -join URL")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "serve plain HTTP and ws:// on a non-loopback -addr: tokens and secrets in clear; for labs only")
	fs.Func("api-host", "another name or address for the serving certificate (repeatable)", func(v string) error {
		c.APIHosts = append(c.APIHosts, v)
		return nil
	})
	c.AddFlags(fs)
	if err := conf.Load(fs, args, c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the configuration and names the field at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %v", c.Addr, err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert and tls_key go together"))
	}
	if hb := time.Duration(c.Heartbeat); hb < syncproto.MinHeartbeat || hb > syncproto.MaxHeartbeat {
		errs = append(errs, fmt.Errorf("heartbeat %v: want %v to %v", hb, syncproto.MinHeartbeat, syncproto.MaxHeartbeat))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("write_timeout must be positive"))
	}
	if c.RaftAddr != "" {
		if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
			errs = append(errs, fmt.Errorf("raft_addr %q: %v", c.RaftAddr, err))
		}
		if c.RaftAdvertise != "" {
			if host, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
				errs = append(errs, fmt.Errorf("raft_advertise %q: want a host:port peers can dial", c.RaftAdvertise))
			}
		} else if host, _, err := net.SplitHostPort(c.RaftAddr); err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
			errs = append(errs, fmt.Errorf("raft_addr %q listens on every address: set raft_advertise to the one peers dial", c.RaftAddr))
		}
		if !nodeIDRE.MatchString(c.NodeID) {
			errs = append(errs, fmt.Errorf("node_id %q: want 1-63 lowercase letters, digits, '.', '_' or '-' (required with raft_addr)", c.NodeID))
		}
		for name, v := range map[string]string{"api_url": c.APIURL, "join": c.Join} {
			if v == "" {
				continue
			}
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("%s %q: want an http(s):// URL", name, v))
			}
		}
		// An operator's certificate verifies a member too (the joining
		// node trusts its own certificate's file).
		if err := httpserve.CheckJoin(c.Join, c.JoinCAFingerprint, c.InsecureHTTP, c.TLSCert != ""); err != nil {
			errs = append(errs, err)
		}
	} else if c.Join != "" || c.NodeID != "" {
		errs = append(errs, errors.New("node_id and join need raft_addr: a single central has no cluster"))
	}
	errs = append(errs, c.Limits.Validate("limits")...)
	if c.MaxPendingHandshakes < 1 {
		errs = append(errs, errors.New("max_pending_handshakes must be at least 1"))
	}
	if c.MaxArtifactSize < 1 {
		errs = append(errs, errors.New("max_artifact_size must be at least 1 byte"))
	}
	errs = append(errs, c.Logging.Validate()...)
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

var nodeIDRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)

// Replicated reports whether central runs as a node of a Raft cluster.
func (c *Config) Replicated() bool { return c.RaftAddr != "" }

// AdvertisedAPI is the URL peers reach this node's API at.
func (c *Config) AdvertisedAPI(listen string) string {
	if c.APIURL != "" {
		return c.APIURL
	}
	return c.Scheme() + "://" + listen
}

// Scheme is http when central serves plain HTTP (a loopback Addr
// without the operator's certificate, or insecure_http), else https.
func (c *Config) Scheme() string {
	host, _, err := net.SplitHostPort(c.Addr)
	if c.TLSCert == "" && (c.InsecureHTTP || err == nil && httpserve.HostIsLoopback(host)) {
		return "http"
	}
	return "https"
}

// Paths inside the data directory.
func (c *Config) StorePath() string      { return filepath.Join(c.DataDir, "central.db") }
func (c *Config) AdminTokenPath() string { return filepath.Join(c.DataDir, "admin.token") }
func (c *Config) RaftDir() string        { return filepath.Join(c.DataDir, "raft") }

// ArtifactDir is this node's store of artifacts (package
// internal/artifact): a copy of every artifact of the catalogue.
func (c *Config) ArtifactDir() string { return filepath.Join(c.DataDir, "artifacts") }

// APICAPath is where central writes its API CA's certificate (PEM, mode
// 0644) for sites and clients to trust.
func (c *Config) APICAPath() string { return filepath.Join(c.DataDir, "api-ca.pem") }
