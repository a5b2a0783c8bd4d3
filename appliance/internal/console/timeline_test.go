package console_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// failProvision places a provision order for machine id and fails its
// power cycle as the BMC executor would, through the site's proposer:
// the order fails, and the site records the BMC job's failure.
func failProvision(t *testing.T, e *env, id string) {
	t.Helper()
	ctx := t.Context()
	o, err := e.n.Site.PlaceOrder(ctx, &store.Order{ID: "p-" + id, Action: store.OrderProvision, MachineID: id, Template: "quick", Image: "debian"})
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range o.Jobs {
		if err := e.n.Site.StartJob(ctx, job, 1, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		res := site.JobResult{OK: true}
		if strings.HasSuffix(job, "-cycle") {
			res = site.JobResult{Error: "127.0.0.1:1: no answer after 3 attempts"}
		}
		if err := e.n.Site.FinishJob(ctx, job, 1, res); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChartsTimeline: the console's charts page draws the site's
// provisions over the window from its own store, its failed ones as
// red bars, and marks its BMC jobs that failed, each listed with what
// it cost; an unknown window is refused by name.
func TestChartsTimeline(t *testing.T) {
	e := start(t, false)
	addMachine(t, e, "m1")
	ctx := t.Context()
	if _, err := e.n.Site.PutTemplate(ctx, &store.Template{Name: "quick", Actions: []store.Action{{Name: "reboot", Type: "reboot"}}}, 0); err != nil {
		t.Fatal(err)
	}
	lab := &store.Subnet{Name: "lab", CIDR: "198.18.0.0/24", Gateway: "198.18.0.1", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}, LeaseSeconds: 600}
	if _, err := e.n.Site.PutSubnet(ctx, lab, 0); err != nil {
		t.Fatal(err)
	}
	img := &store.Image{Name: "debian", Type: store.ImageOS, URL: "https://images.example.net/debian.raw.zst", Format: "raw.zst", Size: 1 << 20, SHA256: strings.Repeat("ab", 32)}
	if _, err := e.n.Site.PutImage(ctx, img, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.n.Site.RecordArtifact(ctx, "n1", img.SHA256, int64(img.Size)); err != nil {
		t.Fatal(err)
	}
	failProvision(t, e, "m1")
	c, _ := e.signIn(t, e.token(t, "watcher", "viewer", "1h"))
	resp, body := e.do(t, http.MethodGet, "/charts?window=1h", nil, nil, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("charts: %d\n%s", resp.StatusCode, body)
	}
	tl := section(body, "timeline")
	for _, want := range []string{`data-test="timeline-provisions">1<`, `data-test="timeline-failed">1<`, `class="provchart"`,
		`class="failed"`, `class="band" data-kind="bmc.job.failed"`, `data-test="annotation-kind">bmc.job.failed<`,
		`data-test="annotation-failed">1<`, "no answer after 3 attempts"} {
		if !strings.Contains(tl, want) {
			t.Errorf("the timeline lacks %s:\n%s", want, tl)
		}
	}
	resp, body = e.do(t, http.MethodGet, "/charts?window=2w", nil, nil, c)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `window &#34;2w&#34; is not one of`) {
		t.Errorf("an unknown window: %d, want 400 naming it", resp.StatusCode)
	}
}
