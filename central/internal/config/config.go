// Package config loads centrald's configuration: defaults, then an
// optional YAML file, then command-line flags, then Validate.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/syncproto"
)

// Defaults.
const (
	DefaultDataDir      = "./var/central"
	DefaultAddr         = "127.0.0.1:7443"
	DefaultWriteTimeout = 10 * time.Second
)

// Config is central's configuration.
type Config struct {
	// DataDir holds the store and the first admin token.
	DataDir string `json:"data_dir"`
	// Addr is where the API and the sync websocket listen (host:port).
	Addr string `json:"addr"`
	// TLSCert and TLSKey, when both are set, make central serve HTTPS
	// and WSS; sites then connect to wss://<addr>/v1/sync.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// Heartbeat is the heartbeat interval of every site connection
	// (syncproto.MinHeartbeat to syncproto.MaxHeartbeat).
	Heartbeat Duration `json:"heartbeat"`
	// WriteTimeout bounds every write to a site: a site that does not
	// take a message in time loses its connection.
	WriteTimeout Duration `json:"write_timeout"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// LogFormat is text or json.
	LogFormat string `json:"log_format"`
}

// Duration is a time.Duration written as "90s" in YAML and on the
// command line.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag's value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

func (d *Duration) UnmarshalJSON(b []byte) error {
	if err := d.Set(strings.Trim(string(b), `"`)); err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	return nil
}

// Default returns the defaults.
func Default() *Config {
	return &Config{
		DataDir:      DefaultDataDir,
		Addr:         DefaultAddr,
		Heartbeat:    Duration(syncproto.DefaultHeartbeat),
		WriteTimeout: Duration(DefaultWriteTimeout),
		LogLevel:     "info",
		LogFormat:    "text",
	}
}

// Load builds the configuration from the defaults, the file named by
// -config (if any) and the other flags in args.
func Load(args []string) (*Config, error) {
	c := Default()
	fs := flag.NewFlagSet("centrald", flag.ContinueOnError)
	file := fs.String("config", "", "YAML configuration file")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory")
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address of the API and the sync websocket")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate file (with -tls-key: serve HTTPS and WSS)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS key file")
	fs.Var(&c.Heartbeat, "heartbeat", "heartbeat interval of site connections")
	fs.Var(&c.WriteTimeout, "write-timeout", "bound of every write to a site")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	// A first pass finds -config; the file is loaded under the flags,
	// then the flags are parsed again so that they win.
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *file != "" {
		raw, err := os.ReadFile(*file)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := yaml.UnmarshalStrict(raw, c); err != nil {
			return nil, fmt.Errorf("config: %s: %w", *file, err)
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
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
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: want text or json", c.LogFormat))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// Scheme is https with TLS, else http.
func (c *Config) Scheme() string {
	if c.TLSCert != "" {
		return "https"
	}
	return "http"
}

// Paths inside the data directory.
func (c *Config) StorePath() string      { return filepath.Join(c.DataDir, "central.db") }
func (c *Config) AdminTokenPath() string { return filepath.Join(c.DataDir, "admin.token") }
