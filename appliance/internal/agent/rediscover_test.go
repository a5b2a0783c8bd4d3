package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// TestRediscover: the node outpost.url names is dead (nothing listens on
// its port); once requests to it go unanswered, the agent asks
// Config.Rediscover, which names another node serving the site on the
// same port, and the whole workflow runs there, the image too, though its
// URL names the dead node.
func TestRediscover(t *testing.T) {
	disk := newDisk(t, 4*mib)
	img := testImage(mib + 7)
	gz := compress(t, formatGzip, img)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2 (all of 127/8 is loopback on Linux): %v", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	dead := "http://127.0.0.1:" + port
	f := newFakeAPI(t,
		workflow.Action{Name: "image", Type: "image.write", Timeout: time.Minute,
			Args: map[string]string{"device": disk, "url": dead + "/artifacts/os.raw.gz", "sha256": sha(gz), "format": "raw.gz"}},
		workflow.Action{Name: "reboot", Type: "reboot", Needs: []string{"image"}},
	)
	f.addArtifact("/artifacts/os.raw.gz", gz)
	live := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	live.Listener.Close()
	live.Listener = ln
	live.Start()
	t.Cleanup(live.Close)
	f.srv.Close()
	f.srv = &httptest.Server{URL: dead}

	var asked atomic.Int32
	cfg := testConfig(t, f, fakeToken)
	cfg.Rediscover = func(context.Context) (string, error) {
		asked.Add(1)
		return "127.0.0.2", nil
	}
	startAgent(t, cfg)
	st := waitDone(t, f)
	if st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("Rediscover asked %d times, want once", n)
	}
	if got := readFile(t, disk)[:len(img)]; string(got) != string(img) {
		t.Error("the disk does not hold the image")
	}
}

// TestApplianceAnswered: the agent looks for the appliance after
// `after` unanswered requests in a row, not before and not after an
// answer; a search that fails, or names the same node, changes nothing;
// URLs on a node it left move to the one it found.
func TestApplianceAnswered(t *testing.T) {
	tests := map[string]struct {
		answers  []bool // each request: answered or not
		found    string
		findErr  error
		wantHost string
		wantAsks int
	}{
		"answered":           {answers: []bool{false, false, true, false, false}, found: "10.0.0.2", wantHost: "10.0.0.1:8080", wantAsks: 0},
		"three unanswered":   {answers: []bool{false, false, false}, found: "10.0.0.2", wantHost: "10.0.0.2:8080", wantAsks: 1},
		"search fails":       {answers: []bool{false, false, false}, findErr: errors.New("no offer"), wantHost: "10.0.0.1:8080", wantAsks: 1},
		"same node":          {answers: []bool{false, false, false}, found: "10.0.0.1", wantHost: "10.0.0.1:8080", wantAsks: 1},
		"six: asked twice":   {answers: []bool{false, false, false, false, false, false}, found: "10.0.0.1", wantHost: "10.0.0.1:8080", wantAsks: 2},
		"two: not asked":     {answers: []bool{false, false}, found: "10.0.0.2", wantHost: "10.0.0.1:8080", wantAsks: 0},
		"moves and moves on": {answers: []bool{false, false, false, true, false}, found: "10.0.0.3", wantHost: "10.0.0.3:8080", wantAsks: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			base, _ := url.Parse("http://10.0.0.1:8080")
			asks := 0
			a := &appliance{base: base, after: 3, log: slog.New(slog.NewTextHandler(t.Output(), nil)),
				find: func(context.Context) (string, error) { asks++; return tc.found, tc.findErr }}
			for _, ok := range tc.answers {
				a.answered(t.Context(), ok)
			}
			if got := a.url().Host; got != tc.wantHost || asks != tc.wantAsks {
				t.Errorf("host %s after %d searches, want %s after %d", got, asks, tc.wantHost, tc.wantAsks)
			}
			img, _ := url.Parse("http://10.0.0.1:8080/artifacts/os.raw.gz?x=1")
			want := "http://" + tc.wantHost + "/artifacts/os.raw.gz?x=1"
			if got := a.current(img).String(); got != want {
				t.Errorf("current(%s) = %s, want %s", img, got, want)
			}
			other, _ := url.Parse("http://192.0.2.9:8080/x")
			if got := a.current(other); got != other {
				t.Errorf("current moved a URL on another host: %s", got)
			}
		})
	}
}
