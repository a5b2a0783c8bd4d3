package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	file := filepath.Join(t.TempDir(), "central.yaml")
	os.WriteFile(file, []byte("addr: 0.0.0.0:9443\nheartbeat: 2s\nlog_format: json\n"), 0o600)
	tests := map[string]struct {
		args []string
		err  string
		addr string
		hb   time.Duration
	}{
		"defaults":          {nil, "", DefaultAddr, 10 * time.Second},
		"file":              {[]string{"-config", file}, "", "0.0.0.0:9443", 2 * time.Second},
		"flag over file":    {[]string{"-config", file, "-addr", "127.0.0.1:1"}, "", "127.0.0.1:1", 2 * time.Second},
		"tls half":          {[]string{"-tls-cert", "c.pem"}, "tls_cert and tls_key go together", "", 0},
		"heartbeat short":   {[]string{"-heartbeat", "1ms"}, "heartbeat 1ms", "", 0},
		"bad addr":          {[]string{"-addr", "nope"}, "addr \"nope\"", "", 0},
		"argument":          {[]string{"extra"}, "unexpected argument", "", 0},
		"raft node":         {[]string{"-raft-addr", "127.0.0.1:7444", "-node-id", "c1"}, "", DefaultAddr, 10 * time.Second},
		"raft no id":        {[]string{"-raft-addr", "127.0.0.1:7444"}, "node_id \"\"", "", 0},
		"raft any addr":     {[]string{"-raft-addr", "0.0.0.0:7444", "-node-id", "c1"}, "set raft_advertise", "", 0},
		"join no raft":      {[]string{"-join", "http://c1:7443"}, "need raft_addr", "", 0},
		"join bad url":      {[]string{"-raft-addr", "127.0.0.1:7444", "-node-id", "c2", "-join", "c1:7443"}, "join \"c1:7443\"", "", 0},
		"no write deadline": {[]string{"-config", limitsFile(t, "limits:\n  write_timeout: 0s\n")}, "limits.write_timeout", "", 0},
		"no handshakes":     {[]string{"-config", limitsFile(t, "max_pending_handshakes: 0\n")}, "max_pending_handshakes", "", 0},
		"no artifacts":      {[]string{"-config", limitsFile(t, "max_artifact_size: 0\n")}, "max_artifact_size", "", 0},
		"uploads end first": {[]string{"-config", limitsFile(t, "limits:\n  upload_timeout: 1s\n")}, "upload_timeout: shorter than body_timeout", "", 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Load(tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Addr != tt.addr || time.Duration(c.Heartbeat) != tt.hb {
				t.Errorf("addr %s heartbeat %v", c.Addr, c.Heartbeat)
			}
			if c.MaxArtifactSize != 64<<30 || time.Duration(c.Limits.UploadTimeout) != DefaultUploadTimeout {
				t.Errorf("max_artifact_size %d, upload_timeout %v: want the defaults", c.MaxArtifactSize, c.Limits.UploadTimeout)
			}
		})
	}
}

func limitsFile(t *testing.T, yaml string) string {
	p := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Central serves plain HTTP on loopback or with insecure_http, HTTPS
// elsewhere; a join is verified as the appliance's.
func TestSchemeAndJoin(t *testing.T) {
	fp := "sha256:" + strings.Repeat("ab", 32)
	raft := []string{"-raft-addr", "127.0.0.1:7444", "-node-id", "c2"}
	for name, tc := range map[string]struct {
		args   []string
		scheme string
		want   string // error; "" accepts
	}{
		"loopback":            {args: []string{"-addr", "127.0.0.1:7443"}, scheme: "http"},
		"network":             {args: []string{"-addr", "198.18.0.1:7443"}, scheme: "https"},
		"wildcard":            {args: []string{"-addr", ":7443"}, scheme: "https"},
		"network, insecure":   {args: []string{"-addr", "198.18.0.1:7443", "-insecure-http"}, scheme: "http"},
		"join https, no pin":  {args: append([]string{"-join", "https://198.18.0.1:7443"}, raft...), want: "join_ca_fingerprint"},
		"join https, pinned":  {args: append([]string{"-join", "https://198.18.0.1:7443", "-join-ca-fingerprint", fp}, raft...), scheme: "http"},
		"join http, network":  {args: append([]string{"-join", "http://198.18.0.1:7443"}, raft...), want: "in the clear"},
		"join http, loopback": {args: append([]string{"-join", "http://127.0.0.1:7443"}, raft...), scheme: "http"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(tc.args)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Scheme() != tc.scheme {
				t.Errorf("scheme %s, want %s", c.Scheme(), tc.scheme)
			}
		})
	}
}

// TestArtifactUpstreamLimit: the cap of upstream fetches reads as a
// size, from a flag or the file, and a value that is not one is refused
// naming it.
func TestArtifactUpstreamLimit(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want int64
		err  string
	}{
		"none":  {nil, 0, ""},
		"flag":  {[]string{"-artifact-upstream-limit", "50MiB"}, 50 << 20, ""},
		"file":  {[]string{"-config", limitsFile(t, "artifact_upstream_limit: 1GB\n")}, 1e9, ""},
		"bytes": {[]string{"-artifact-upstream-limit", "4096"}, 4096, ""},
		"bad":   {[]string{"-artifact-upstream-limit", "fast"}, 0, `"fast" is not a size`},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || int64(c.ArtifactUpstreamLimit) != tc.want {
				t.Fatalf("artifact_upstream_limit %d (err %v), want %d", c.ArtifactUpstreamLimit, err, tc.want)
			}
		})
	}
}
