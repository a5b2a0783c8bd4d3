package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/vmedia"
)

// testOSBooted is the test OS's first line, before it looks for DHCP
// (which a routed subnet without a relay does not give it).
var testOSBooted = regexp.MustCompile(`OUTPOST-TESTOS-BOOTED from disk`)

// TestVirtualMediaProvision: a VM on a routed subnet where the appliance
// answers no DHCP (boot: vmedia), behind the lab's Redfish BMC. A
// provision order reserves its static address from IPAM, binds the
// workflow to it, and has the BMC fetch the order's boot ISO from the
// appliance and boot it once; the installer takes the static address,
// reaches the appliance through the gateway, installs the test OS and
// boots it. The media URL is nowhere in the appliance's output or
// events, and it answers 404 once the order has ended.
func TestVirtualMediaProvision(t *testing.T) {
	lab.Require(t, "root", "qemu-system-x86_64", "xorriso", vmedia.DefaultIsolinux, vmedia.DefaultLdlinux)
	s := bmcSite(t, 5*time.Minute, 2*time.Minute)
	const mac = "52:54:00:b3:c9:21"
	rf := s.AddVMediaMachine(t, "vm9", mac)
	vm := &bmcVM{Serial: rf.Serial}
	serial := rf.Serial
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()

	start := time.Now()
	s.Put(t, labsite.ProvisionOrder("vprov", "vm9", "vm-host-9"))
	if _, _, err := vm.waitSerial(ctx, testOSBooted, 0); err != nil {
		b, _ := os.ReadFile(serial)
		t.Fatalf("the machine did not provision: %v\n%s", err, tailLines(b, 60))
	}
	took := time.Since(start)
	t.Logf("provision by virtual media: order to installed OS booted in %s (boot=vmedia seconds=%.1f)", took.Round(time.Second), took.Seconds())
	if o := waitOrder(ctx, t, s, "vprov"); o.State != store.OrderSucceeded {
		t.Fatalf("order vprov: %s %q", o.State, o.Reason)
	}
	b, _ := os.ReadFile(serial)
	if !strings.Contains(string(b), "static address "+labsite.RoutedFirst+"/24") {
		t.Errorf("the installer did not say it took its static address:\n%s", tailLines(b, 60))
	}
	w, err := s.Workflow(ctx, "vprov")
	if err != nil || w.BootAddr != labsite.RoutedFirst {
		t.Errorf("workflow %+v (%v): want it bound to %s", w, err, labsite.RoutedFirst)
	}
	for _, id := range []string{"vprov-media", "vprov-cd", "vprov-cycle"} {
		var j store.Job
		if err := s.API.Get(ctx, "jobs", id, &j); err != nil || j.State != store.JobSucceeded {
			t.Errorf("job %s: %+v (%v), want succeeded", id, j, err)
		}
	}
	image, _ := rf.BMC.Media()
	if !strings.HasPrefix(image, labsite.BootURL+"/vmedia/") {
		t.Fatalf("the BMC's CD came from %q, want the appliance's /vmedia/", image)
	}
	checkNotShown(t, s, strings.TrimPrefix(image, labsite.BootURL))
	if err := labsite.Poll(ctx, time.Minute, func() error { return mediaGone(ctx, s, image) }); err != nil {
		t.Error(err)
	}
}

// mediaGone returns nil once image answers 404, from the site's
// namespace.
func mediaGone(ctx context.Context, s *labsite.Site, image string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, image, nil)
	if err != nil {
		return err
	}
	resp, err := s.NS.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("the ended order's media answers %s", resp.Status)
	}
	return nil
}

// checkNotShown fails if secret is in the appliance's output or events.
func checkNotShown(t *testing.T, s *labsite.Site, secret string) {
	t.Helper()
	for _, f := range []string{s.Process().Stdout, s.Process().Stderr} {
		if b, err := os.ReadFile(f); err != nil || strings.Contains(string(b), secret) {
			t.Errorf("the media URL is in %s (%v)", f, err)
		}
	}
	events, err := s.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.Contains(fmt.Sprint(e), secret) {
			t.Errorf("the media URL is in event %d", e.Seq)
		}
	}
}

func tailLines(b []byte, n int) string {
	lines := strings.Split(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
