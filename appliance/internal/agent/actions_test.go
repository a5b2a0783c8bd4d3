package agent

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

func TestParseCmdline(t *testing.T) {
	tests := map[string]struct {
		line string
		want Params
	}{
		"install": {
			line: "BOOT_IMAGE=vmlinuz console=ttyS0 outpost.url=http://198.18.0.1:8080/ outpost.token=abc outpost.machine=m-7 outpost.mac=52:54:00:AA:BB:CC " +
				"outpost.traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
			want: Params{URL: "http://198.18.0.1:8080", Token: "abc", Machine: "m-7", MAC: "52:54:00:aa:bb:cc",
				Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		},
		"discover": {
			line: "outpost.mode=discover outpost.url=http://[fd00::1]:8080 outpost.token=t outpost.mac=52:54:00:00:00:01",
			want: Params{URL: "http://[fd00::1]:8080", Token: "t", MAC: "52:54:00:00:00:01", Mode: "discover"},
		},
		"quoted and repeated": {
			line: `outpost.token=old quiet "outpost.token=new one" outpost.url="http://a:1"`,
			want: Params{URL: "http://a:1", Token: "new one"},
		},
		"empty": {line: "", want: Params{}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseCmdline(tt.line)); diff != "" {
				t.Errorf("ParseCmdline (-want +got):\n%s", diff)
			}
		})
	}
	for line, bad := range map[string]string{
		"outpost.url=http://a:1":                   "missing outpost.token",
		"outpost.token=x":                          "missing outpost.url",
		"outpost.url=ftp://a outpost.token=x":      "not an http(s) URL",
		"outpost.url=http:/nohost outpost.token=x": "not an http(s) URL",
	} {
		if err := ParseCmdline(line).check(); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("check(%q) = %v, want %q", line, err, bad)
		}
	}
}

// disk.wipe quick zeroes the first and last MiB, zero all of it.
func TestDiskWipe(t *testing.T) {
	const size = 5*mib + 4096
	tests := map[string]struct {
		mode  string
		check func(t *testing.T, b []byte)
	}{
		"quick": {"", func(t *testing.T, b []byte) {
			if !allBytes(b[:mib], 0) || !allBytes(b[size-mib:], 0) {
				t.Error("first or last MiB not zeroed")
			}
			if !allBytes(b[mib:size-mib], 0xff) {
				t.Error("quick wipe touched the middle")
			}
		}},
		"zero": {"zero", func(t *testing.T, b []byte) {
			if !allBytes(b, 0) {
				t.Error("not all zero")
			}
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			disk := newDisk(t, size)
			f, _ := run(t, nil, workflow.Action{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": disk, "mode": tt.mode}})
			if st := waitDone(t, f); st.Status != workflow.Succeeded {
				t.Fatalf("workflow %s: %s", st.Status, st.Reason)
			}
			b := readFile(t, disk)
			if len(b) != size {
				t.Fatalf("disk is %d bytes, want %d", len(b), size)
			}
			tt.check(t, b)
		})
	}
}

func allBytes(b []byte, v byte) bool {
	return len(bytes.Trim(b, string([]byte{v}))) == 0
}

// file.write refuses paths that leave their file system.
func TestFileWriteRefusesEscapes(t *testing.T) {
	f, _ := run(t, nil, workflow.Action{Name: "w", Type: "file.write",
		Args: map[string]string{"path": "/tmp/../etc/passwd", "content": "x"}})
	st := waitDone(t, f)
	if a, _ := st.Action("w"); a.Status != workflow.Failed || !strings.Contains(a.Message, `".." is not allowed`) {
		t.Errorf("action %s: %q", a.Status, a.Message)
	}
}

// resolveIn follows links as if the mount were "/".
func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	fakeTree(t, root, map[string]string{
		"etc/hostname":        "old",
		"etc/resolv.conf":     "->/run/resolv.conf",
		"run/resolv.conf":     "x",
		"lib":                 "->usr/lib",
		"usr/lib/x":           "x",
		"up":                  "->../../../../etc",
		"loop":                "->loop",
		"etc/alternatives/ed": "->../../bin/ed",
	})
	tests := map[string]string{
		"/etc/hostname":                "etc/hostname",
		"etc/hostname":                 "etc/hostname",
		"/etc/resolv.conf":             "run/resolv.conf",
		"/lib/x":                       "usr/lib/x",
		"/lib/new/file":                "usr/lib/new/file",
		"/up/hostname":                 "etc/hostname",
		"/etc/alternatives/ed":         "bin/ed",
		"/new/dir/file":                "new/dir/file",
		"/etc/cloud/cloud.cfg.d/x.cfg": "etc/cloud/cloud.cfg.d/x.cfg",
	}
	for p, want := range tests {
		got, err := resolveIn(root, p)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("resolveIn(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{"/../etc", "a/../../b", "", "/loop/x"} {
		if got, err := resolveIn(root, p); err == nil {
			t.Errorf("resolveIn(%q) = %q, want an error", p, got)
		}
	}
}

// The agent's own code imports no other Outpost package than agentproto
// and the retry schedule of the shared core (internal/backoff, which
// imports only the standard library): it is a small static binary of
// its own. It traces with the OpenTelemetry SDK alone: no OTLP exporter,
// gRPC, protobuf or bbolt (package tracing's), which would double it.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/outposthq/outpost/"
	allowed := map[string]bool{
		module + "appliance/internal/agent":      true,
		module + "appliance/internal/agentproto": true,
		module + "internal/backoff":              true,
	}
	heavy := []string{"go.opentelemetry.io/otel/exporters/", "google.golang.org/grpc", "google.golang.org/protobuf", "go.etcd.io/bbolt"}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, module) && !allowed[p] {
			t.Errorf("agent depends on %s", p)
		}
		for _, h := range heavy {
			if strings.HasPrefix(p, h) {
				t.Errorf("agent depends on %s", p)
			}
		}
	}
	if !slices.Contains(strings.Fields(string(out)), "go.opentelemetry.io/otel/sdk/trace") {
		t.Error("the agent does not trace with the OpenTelemetry SDK")
	}
}

// A finished workflow's reports are refused (409): the agent idles
// without re-running anything.
func TestIdlesWhenDone(t *testing.T) {
	dir, actions := threeSteps(t)
	f, _ := run(t, nil, actions...)
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	waitUntil(t, "the last report", func() bool { return len(f.reports(agentproto.ReportFinish)) == 3 })
	if err := os.Remove(filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	before := f.requestCount("POST " + agentproto.PathReport)
	polls := f.requestCount("GET " + agentproto.PathWorkflow)
	waitUntil(t, "idle polls", func() bool { return f.requestCount("GET "+agentproto.PathWorkflow) >= polls+3 })
	if after := f.requestCount("POST " + agentproto.PathReport); after != before {
		t.Errorf("%d reports after the workflow ended", after-before)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); err == nil {
		t.Error("an action ran again")
	}
}
