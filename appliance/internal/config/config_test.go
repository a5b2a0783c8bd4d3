package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/conf"
)

func TestDefaultsValidate(t *testing.T) {
	c, err := Load(nil)
	if err != nil {
		t.Fatalf("Load(nil): %v", err)
	}
	if c.APIURL != "http://127.0.0.1:7080" || c.RaftAdvertise != "127.0.0.1:7081" {
		t.Errorf("derived addresses: api_url=%q raft_advertise=%q", c.APIURL, c.RaftAdvertise)
	}
}

func TestFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("node_id: n7\napi_addr: 127.0.0.1:9000\n"), 0o600)
	c, err := Load([]string{"-config", path, "-api-addr", "127.0.0.1:9100"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != "n7" || c.APIAddr != "127.0.0.1:9100" {
		t.Errorf("got node_id=%q api_addr=%q", c.NodeID, c.APIAddr)
	}
}

// A file that sets one limit keeps the defaults of the others.
func TestLimitsFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("boot_limits:\n  write_timeout: 5s\n"), 0o600)
	c, err := Load([]string{"-config", path})
	if err != nil {
		t.Fatal(err)
	}
	def := Default().BootLimits
	def.WriteTimeout = conf.Duration(5 * time.Second)
	if c.BootLimits != def {
		t.Errorf("boot_limits = %+v, want the defaults with write_timeout 5s: %+v", c.BootLimits, def)
	}
	if c.BootLimits.MaxConnsPerSource < 2000 {
		t.Errorf("boot_limits.max_conns_per_source %d: a thousand machines behind one relay need two connections each", c.BootLimits.MaxConnsPerSource)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		file string
		args []string
		want string
	}{
		"unknown field":    {file: "nodeid: x\n", want: `unknown field "nodeid"`},
		"bad yaml":         {file: "node_id: [\n", want: "c.yaml"},
		"bad node id":      {args: []string{"-id", "Node One"}, want: "node_id"},
		"bad addr":         {args: []string{"-api-addr", "nowhere"}, want: "api_addr"},
		"bad join":         {args: []string{"-join", "ftp://x"}, want: "join"},
		"bad level":        {args: []string{"-log-level", "loud"}, want: "log_level"},
		"no body deadline": {file: "api_limits:\n  body_timeout: 0s\n", want: "api_limits.body_timeout"},
		"cap per source over total": {file: "boot_limits:\n  max_conns: 10\n  max_conns_per_source: 20\n",
			want: "boot_limits.max_conns_per_source"},
		"negative tftp cap": {file: "tftp_max_transfers: -1\n", want: "tftp_max_transfers"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				p := filepath.Join(dir, "c.yaml")
				os.WriteFile(p, []byte(tc.file), 0o600)
				args = append([]string{"-config", p}, args...)
			}
			_, err := Load(args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%v) = %v, want error naming %q", args, err, tc.want)
			}
		})
	}
}

func TestBMCConfig(t *testing.T) {
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.BMC.JobTimeout) != 3*time.Minute || c.BMC.Attempts != 3 || c.BMC.Concurrency != 32 {
		t.Errorf("defaults: %+v", c.BMC)
	}
	c, err = Load([]string{"-bmc-job-timeout", "20s", "-bmc-concurrency", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.BMC.JobTimeout) != 20*time.Second || c.BMC.Concurrency != 4 {
		t.Errorf("after flags: %+v", c.BMC)
	}
	if _, err := Load([]string{"-bmc-attempts", "0"}); err == nil || !strings.Contains(err.Error(), "bmc.attempts") {
		t.Errorf("Load with no attempts: %v", err)
	}
}

func TestSyncConfig(t *testing.T) {
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.CentralURL != "" {
		t.Errorf("central_url defaults to %q, want sync off", c.CentralURL)
	}
	c, err = Load([]string{"-central-url", "wss://central.example.net", "-site-id", "ams2", "-site-credential-file", "/etc/outpost/site.credential"})
	if err != nil {
		t.Fatal(err)
	}
	if c.CentralURL != "wss://central.example.net" || c.SiteID != "ams2" || c.SiteCredentialFile != "/etc/outpost/site.credential" {
		t.Errorf("after flags: %q %q %q", c.CentralURL, c.SiteID, c.SiteCredentialFile)
	}
	// A replicated central's nodes, separated by commas.
	if _, err := Load([]string{"-central-url", "http://c1:7443, http://c2:7443,wss://c3", "-site-id", "a", "-site-credential-file", "f"}); err != nil {
		t.Errorf("a list of central URLs: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("central_url: http://127.0.0.1:8443\nsite_id: lab\nsite_credential_file: cred\n"), 0o600)
	if c, err = Load([]string{"-config", path}); err != nil || c.SiteID != "lab" {
		t.Errorf("Load from file: %+v, %v", c, err)
	}
	bad := map[string]struct {
		args []string
		want string
	}{
		"scheme":        {[]string{"-central-url", "ftp://x", "-site-id", "a", "-site-credential-file", "f"}, "central_url"},
		"no site":       {[]string{"-central-url", "ws://x", "-site-credential-file", "f"}, "site_id"},
		"no credential": {[]string{"-central-url", "ws://x", "-site-id", "a"}, "site_credential_file"},
		"user in URL":   {[]string{"-central-url", "ws://u:p@x", "-site-id", "a", "-site-credential-file", "f"}, "central_url"},
		"site alone":    {[]string{"-site-id", "a"}, "need central_url"},
		"bad in list":   {[]string{"-central-url", "http://c1:7443,c2:7443", "-site-id", "a", "-site-credential-file", "f"}, `central_url "c2:7443"`},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%v) = %v, want error naming %q", tc.args, err, tc.want)
			}
		})
	}
}
