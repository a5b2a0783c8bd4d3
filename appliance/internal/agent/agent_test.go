package agent

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// The agent runs exactly the catalogue's action types.
func TestCatalogue(t *testing.T) {
	got := slices.Sorted(maps.Keys(handlers))
	want := slices.Sorted(maps.Keys(actions.Catalogue))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("action types (-catalogue +agent):\n%s", diff)
	}
}

// testImage makes a disk image of n bytes: random blocks and runs of
// zeros, like a real one.
func testImage(n int) []byte {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	b := make([]byte, n)
	for off := 0; off < n; off += 64 << 10 {
		if r.IntN(3) == 0 {
			continue // zeros
		}
		for i := off; i < min(n, off+64<<10); i++ {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

// compressed caches compress's results: compressing is slow under the
// race detector.
var compressed sync.Map // format + sha(b) → []byte

// compress compresses b in format.
func compress(t *testing.T, format string, b []byte) []byte {
	t.Helper()
	key := format + sha(b)
	if c, ok := compressed.Load(key); ok {
		return c.([]byte)
	}
	c := compressUncached(t, format, b)
	compressed.Store(key, c)
	return c
}

func compressUncached(t *testing.T, format string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case formatRaw:
		return b
	case formatGzip:
		w := gzip.NewWriter(&buf)
		w.Write(b)
		err = w.Close()
	case formatZstd:
		w, _ := zstd.NewWriter(&buf)
		w.Write(b)
		err = w.Close()
	case formatXz:
		w, werr := xz.NewWriter(&buf)
		if werr != nil {
			t.Fatal(werr)
		}
		w.Write(b)
		err = w.Close()
	default:
		t.Fatalf("format %s", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// newDisk makes a regular file standing in for a disk, full of 0xff.
func newDisk(t *testing.T, size int) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(name, bytes.Repeat([]byte{0xff}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A whole installation: wipe, image, then a file and a command in
// parallel, then reboot, once the appliance has acknowledged it.
func TestFullRun(t *testing.T) {
	dir := t.TempDir()
	disk := newDisk(t, 6*mib)
	img := testImage(2*mib + 12345)
	gz := compress(t, formatGzip, img)
	hostname := filepath.Join(dir, "etc", "hostname")
	out := filepath.Join(dir, "exec.out")
	f := newFakeAPI(t,
		workflow.Action{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": disk}},
		workflow.Action{Name: "image", Type: "image.write", Needs: []string{"wipe"}, Timeout: time.Minute,
			Args: map[string]string{"device": disk, "url": "/artifacts/os.raw.gz", "sha256": sha(gz), "format": "raw.gz"}},
		workflow.Action{Name: "hostname", Type: "file.write", Needs: []string{"image"},
			Args: map[string]string{"path": hostname, "content": "node-1\n", "mode": "0600"}},
		workflow.Action{Name: "hello", Type: "exec", Needs: []string{"image"},
			Args: map[string]string{"command": "echo \"$OUTPOST_ACTION $OUTPOST_MACHINE\" > " + out}},
		workflow.Action{Name: "reboot", Type: "reboot", Needs: []string{"hostname", "hello"}},
	)
	f.addArtifact("/artifacts/os.raw.gz", gz)
	// The reboot's result is answered 503 twice: the agent must not
	// reboot before the appliance has it.
	refusals := 0
	f.with(func(f *fakeAPI) {
		f.fault = func(rep agentproto.Report) int {
			if rep.Action == "reboot" && rep.Kind == agentproto.ReportFinish && refusals < 2 {
				refusals++
				return http.StatusServiceUnavailable
			}
			return 0
		}
	})
	cfg := testConfig(t, f, fakeToken)
	sys := &fakeSystem{check: func(call string) {
		if call != "sync" && call != "reboot" {
			return
		}
		if a, _ := f.state().Action("reboot"); a.Status != workflow.Succeeded {
			t.Errorf("%s before the appliance acknowledged the reboot's result (it is %s)", call, a.Status)
		}
	}}
	cfg.System = sys
	startAgent(t, cfg)

	st := waitDone(t, f)
	if st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	waitUntil(t, "the reboot", func() bool { return slices.Contains(sys.Calls(), "reboot") })
	time.Sleep(50 * time.Millisecond) // nothing more happens
	if diff := cmp.Diff([]string{"sync", "reboot"}, sys.Calls()); diff != "" {
		t.Errorf("system calls (-want +got):\n%s", diff)
	}
	if got := readFile(t, disk); !bytes.Equal(got, img) {
		t.Errorf("disk: %d bytes, not the %d bytes of the image", len(got), len(img))
	}
	if got := string(readFile(t, hostname)); got != "node-1\n" {
		t.Errorf("hostname = %q", got)
	}
	if fi, err := os.Stat(hostname); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("hostname mode: %v %v", fi.Mode(), err)
	}
	if got := string(readFile(t, out)); got != "hello m-1\n" {
		t.Errorf("exec output = %q", got)
	}
	for _, kind := range []string{agentproto.ReportStart, agentproto.ReportFinish} {
		var names []string
		for _, r := range f.reports(kind) {
			names = append(names, fmt.Sprintf("%s/%d", r.Action, r.Attempt))
		}
		slices.Sort(names)
		want := []string{"hello/1", "hostname/1", "image/1", "reboot/1", "wipe/1"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("%s reports (-want +got):\n%s", kind, diff)
		}
	}
	if a, _ := st.Action("image"); !strings.Contains(a.Message, "sha256 verified") {
		t.Errorf("image message = %q", a.Message)
	}
}
