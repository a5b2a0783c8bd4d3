package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		file string
		args []string
		want string
	}{
		"unknown field": {file: "nodeid: x\n", want: `unknown field "nodeid"`},
		"bad yaml":      {file: "node_id: [\n", want: "c.yaml"},
		"bad node id":   {args: []string{"-id", "Node One"}, want: "node_id"},
		"bad addr":      {args: []string{"-api-addr", "nowhere"}, want: "api_addr"},
		"bad join":      {args: []string{"-join", "ftp://x"}, want: "join"},
		"bad level":     {args: []string{"-log-level", "loud"}, want: "log_level"},
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
