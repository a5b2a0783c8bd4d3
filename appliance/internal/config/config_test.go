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

// The Raft settings default to LANTiming's heartbeat timeout and nice
// -10, and a file or the flags change them.
func TestRaftConfig(t *testing.T) {
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(c.Raft.HeartbeatTimeout); d != time.Second || c.Raft.Nice != -10 {
		t.Errorf("defaults: heartbeat_timeout %v nice %d, want 1s and -10", d, c.Raft.Nice)
	}
	if p, pt := time.Duration(c.Raft.LeaderProbe), time.Duration(c.Raft.LeaderProbeTimeout); p != 250*time.Millisecond || pt != 250*time.Millisecond {
		t.Errorf("defaults: leader_probe %v leader_probe_timeout %v, want 250ms and 250ms", p, pt)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("raft:\n  heartbeat_timeout: 2s\n  leader_probe: 0s\n"), 0o600)
	if c, err = Load([]string{"-config", path, "-nice", "0", "-raft-leader-probe-timeout", "100ms"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(c.Raft.HeartbeatTimeout); d != 2*time.Second || c.Raft.Nice != 0 {
		t.Errorf("heartbeat_timeout %v nice %d, want 2s and 0", d, c.Raft.Nice)
	}
	if p, pt := time.Duration(c.Raft.LeaderProbe), time.Duration(c.Raft.LeaderProbeTimeout); p != 0 || pt != 100*time.Millisecond {
		t.Errorf("leader_probe %v leader_probe_timeout %v, want 0 and 100ms", p, pt)
	}
}

// The DHCP server's holds and probe default to what package dhcp would
// choose, and a file turns the probe off with 0.
func TestDHCPConfig(t *testing.T) {
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := DHCPConfig{
		OfferHold: conf.Duration(30 * time.Second), DeclineQuarantine: conf.Duration(10 * time.Minute),
		ProbeWait: conf.Duration(200 * time.Millisecond), ConflictQuarantine: conf.Duration(10 * time.Minute),
	}
	if c.DHCP != want {
		t.Errorf("defaults: %+v, want %+v", c.DHCP, want)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("dhcp:\n  probe_wait: 0s\n  conflict_quarantine: 1h\n"), 0o600)
	if c, err = Load([]string{"-config", path}); err != nil {
		t.Fatal(err)
	}
	if c.DHCP.ProbeWait != 0 || c.DHCP.ConflictQuarantine != conf.Duration(time.Hour) || c.DHCP.OfferHold != want.OfferHold {
		t.Errorf("from a file: %+v", c.DHCP)
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
		"negative tftp cap":       {file: "tftp_max_transfers: -1\n", want: "tftp_max_transfers"},
		"tftp window too big":     {file: "tftp_max_window: 65536\n", want: "tftp_max_window"},
		"negative tftp window":    {file: "tftp_max_window: -1\n", want: "tftp_max_window"},
		"heartbeat too short":     {args: []string{"-raft-heartbeat-timeout", "10ms"}, want: "raft.heartbeat_timeout"},
		"heartbeat too long":      {file: "raft:\n  heartbeat_timeout: 1m\n", want: "raft.heartbeat_timeout"},
		"nice out of range":       {args: []string{"-nice", "-21"}, want: "raft.nice"},
		"probe after the timeout": {args: []string{"-raft-leader-probe", "2s"}, want: "raft.leader_probe"},
		"negative probe":          {args: []string{"-raft-leader-probe", "-1ms"}, want: "raft.leader_probe"},
		"probe timeout too short": {args: []string{"-raft-leader-probe-timeout", "1ms"}, want: "raft.leader_probe_timeout"},
		"no offer hold":           {file: "dhcp:\n  offer_hold: 0s\n", want: "dhcp.offer_hold"},
		"long arp probe":          {args: []string{"-dhcp-probe-wait", "3s"}, want: "dhcp.probe_wait"},
		"negative arp probe":      {args: []string{"-dhcp-probe-wait", "-1ms"}, want: "dhcp.probe_wait"},
		"no conflict quarantine":  {file: "dhcp:\n  conflict_quarantine: 0s\n", want: "dhcp.conflict_quarantine"},
		"long decline quarantine": {file: "dhcp:\n  decline_quarantine: 800h\n", want: "dhcp.decline_quarantine"},
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
	if _, err := Load([]string{"-central-url", "https://c1:7443, https://c2:7443,wss://c3", "-site-id", "a", "-site-credential-file", "f"}); err != nil {
		t.Errorf("a list of central URLs: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("central_url: https://127.0.0.1:8443\nsite_id: lab\nsite_credential_file: cred\n"), 0o600)
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
		"bad in list":   {[]string{"-central-url", "https://c1:7443,c2:7443", "-site-id", "a", "-site-credential-file", "f"}, `central_url "c2:7443"`},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%v) = %v, want error naming %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestCentralURLNeedsTLS: a ws:// or http:// central is refused, naming
// the URL and the flag that allows it, unless insecure_central is set (by
// flag or file); wss:// and https:// need nothing.
func TestCentralURLNeedsTLS(t *testing.T) {
	site := []string{"-site-id", "lab", "-site-credential-file", "cred"}
	for _, u := range []string{"ws://127.0.0.1:7443", "http://127.0.0.1:7443", "https://c1:7443,http://c2:7443"} {
		_, err := Load(append([]string{"-central-url", u}, site...))
		if err == nil || !strings.Contains(err.Error(), "in the clear") || !strings.Contains(err.Error(), "insecure_central") {
			t.Errorf("central_url %s: %v, want a refusal saying it is in the clear and naming insecure_central", u, err)
		}
		if c, err := Load(append([]string{"-central-url", u, "-insecure-central"}, site...)); err != nil || !c.InsecureCentral {
			t.Errorf("central_url %s with -insecure-central: %v", u, err)
		}
	}
	path := filepath.Join(t.TempDir(), "lab.yaml")
	os.WriteFile(path, []byte("central_url: ws://127.0.0.1:7443\ninsecure_central: true\nsite_id: lab\nsite_credential_file: cred\n"), 0o600)
	if _, err := Load([]string{"-config", path}); err != nil {
		t.Errorf("insecure_central in a file: %v", err)
	}
	for _, u := range []string{"wss://central.example.net", "https://central.example.net:7443"} {
		if _, err := Load(append([]string{"-central-url", u}, site...)); err != nil {
			t.Errorf("central_url %s: %v", u, err)
		}
	}
}

// TestCAFiles: central_ca_file and bmc.ca_file must hold PEM certificates;
// a missing file or one without a certificate is refused, naming the
// field.
func TestCAFiles(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte(testCA), 0o644)
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o644)
	site := []string{"-central-url", "wss://c1", "-site-id", "lab", "-site-credential-file", "cred"}
	for flag, field := range map[string]string{"-central-ca-file": "central_ca_file", "-bmc-ca-file": "bmc.ca_file"} {
		c, err := Load(append([]string{flag, ca}, site...))
		if err != nil {
			t.Fatalf("%s %s: %v", flag, ca, err)
		}
		roots, _ := c.CentralRoots()
		if field == "bmc.ca_file" {
			roots, _ = c.BMCRoots()
		}
		if roots == nil {
			t.Errorf("%s: no pool", field)
		}
		for _, bad := range []string{filepath.Join(dir, "missing.pem"), empty} {
			if _, err := Load(append([]string{flag, bad}, site...)); err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), bad) {
				t.Errorf("%s %s: %v, want a refusal naming %s and the file", flag, bad, err, field)
			}
		}
	}
	c, _ := Load(nil)
	if r, err := c.BMCRoots(); r != nil || err != nil {
		t.Errorf("BMCRoots by default: %v, %v; want none", r, err)
	}
}

// testCA is a CA certificate (a lab CA, ECDSA P-256).
const testCA = `-----BEGIN CERTIFICATE-----
MIIBjDCCATGgAwIBAgIUaxJY80D3GLzUqHj/ckkZHTeXd0EwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPb3V0cG9zdCB0ZXN0IENBMCAXDTI2MTIwNjIyMzAxNVoYDzIx
MjYxMTEyMjIzMDE1WjAaMRgwFgYDVQQDDA9vdXRwb3N0IHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAASmP//zL6//+uCDgTmqcf7aySvkyPVBE8RoaAFZ
YMPkCisjRuiwcOlNSRhv36DT6hkahSvEyIqE24gE5QmAKsguo1MwUTAdBgNVHQ4E
FgQUhH/ipqzy7qgAef693GQDFzcA4akwHwYDVR0jBBgwFoAUhH/ipqzy7qgAef69
3GQDFzcA4akwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAjzM5
bGgXnXr38kTMWyCHr4X4lfLHUcnexko89MYkTN8CIQCh2TX0pSaQyVJq4N/xPrsC
p9U6oPxFXqPNiNzXAtl1Zw==
-----END CERTIFICATE-----
`

// The API URL's scheme follows what the API serves: plain HTTP on
// loopback or with insecure_http, HTTPS elsewhere.
func TestAPIURLScheme(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"loopback":           {args: []string{"-api-addr", "127.0.0.1:7080"}, want: "http://127.0.0.1:7080"},
		"localhost":          {args: []string{"-api-addr", "localhost:7080"}, want: "http://localhost:7080"},
		"network":            {args: []string{"-api-addr", "198.18.0.1:7080"}, want: "https://198.18.0.1:7080"},
		"network, insecure":  {args: []string{"-api-addr", "198.18.0.1:7080", "-insecure-http"}, want: "http://198.18.0.1:7080"},
		"wildcard":           {args: []string{"-api-addr", "0.0.0.0:7080", "-api-url", ""}, want: "https://"},
		"operator, loopback": {args: []string{"-api-addr", "127.0.0.1:7080", "-config", tlsFile(t)}, want: "https://127.0.0.1:7080"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.APIURL, tc.want) {
				t.Errorf("api_url %q, want %s...", c.APIURL, tc.want)
			}
		})
	}
}

func tlsFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("tls_cert: c.pem\ntls_key: k.pem\n"), 0o600)
	return path
}

// A join is verified: an https:// member by a pinned fingerprint, an
// http:// one only on loopback or with insecure_http.
func TestJoinVerified(t *testing.T) {
	fp := "sha256:" + strings.Repeat("ab", 32)
	for name, tc := range map[string]struct {
		args []string
		want string // "" accepts
	}{
		"https without a fingerprint": {args: []string{"-join", "https://198.18.0.1:7080"}, want: "join_ca_fingerprint (-join-ca-fingerprint)"},
		"https with one":              {args: []string{"-join", "https://198.18.0.1:7080", "-join-ca-fingerprint", fp}},
		"a bad fingerprint":           {args: []string{"-join", "https://198.18.0.1:7080", "-join-ca-fingerprint", "sha256:12"}, want: "join_ca_fingerprint"},
		"http on loopback":            {args: []string{"-join", "http://127.0.0.1:7080"}},
		"http on the network":         {args: []string{"-join", "http://198.18.0.1:7080"}, want: "sends the admin token in the clear"},
		"http, insecure_http":         {args: []string{"-join", "http://198.18.0.1:7080", "-insecure-http"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(tc.args)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCentralCAFingerprint(t *testing.T) {
	base := []string{"-central-url", "wss://central.example", "-site-id", "s1", "-site-credential-file", "cred"}
	if _, err := Load(append(base, "-central-ca-fingerprint", "sha256:"+strings.Repeat("cd", 32))); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(append(base, "-central-ca-fingerprint", "nope")); err == nil || !strings.Contains(err.Error(), "central_ca_fingerprint") {
		t.Fatalf("a bad central_ca_fingerprint: %v", err)
	}
}

// The artifact keys read from a file and from flags; a bad one is
// refused naming it.
func TestArtifactConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("artifact_wan_limit: 50MiB\nartifact_grace: 10m\n"), 0o600)
	c, err := Load([]string{"-config", path, "-data-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if c.ArtifactWANLimit != 50<<20 || time.Duration(c.ArtifactGrace) != 10*time.Minute || c.ArtifactStorePath() != filepath.Join(dir, "artifacts") {
		t.Errorf("artifact config: limit %d, grace %v, store %s", c.ArtifactWANLimit, c.ArtifactGrace, c.ArtifactStorePath())
	}
	c, err = Load([]string{"-artifact-wan-limit", "1000", "-artifact-store", "/srv/artifacts"})
	if err != nil || c.ArtifactWANLimit != 1000 || c.ArtifactStorePath() != "/srv/artifacts" || time.Duration(c.ArtifactGrace) != 24*time.Hour {
		t.Errorf("flags: %+v, %v", c, err)
	}
	for args, want := range map[string]string{
		"-artifact-grace=0s":        "artifact_grace",
		"-artifact-wan-limit=lots":  "not a size",
		"-artifact-grace=-1h":       "artifact_grace",
		"-artifact-wan-limit=-5MiB": "not a size",
	} {
		if _, err := Load([]string{args}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want an error naming %s", args, err, want)
		}
	}
}

func TestCentralBases(t *testing.T) {
	c := Default()
	c.CentralURL = "wss://c1.example/v1/sync, https://c2.example:8443 ,ws://10.0.0.3:7000/v1/sync/,https://c4.example/prefix/"
	want := []string{"https://c1.example", "https://c2.example:8443", "http://10.0.0.3:7000", "https://c4.example/prefix"}
	if got := c.CentralBases(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("CentralBases() = %q, want %q", got, want)
	}
}
