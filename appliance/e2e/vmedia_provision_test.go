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

	"github.com/outposthq/outpost/appliance/internal/bmc"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/vmedia"
)

// The routed subnet of TestVirtualMediaProvision: a second bridge in the
// site's namespace, which routes between it and the appliance's address
// on the boot network. The appliance answers no DHCP on it.
const (
	routedBridge  = "br9"
	routedGateway = "198.18.9.1"
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
	s.NS.Bridge(routedBridge, routedGateway+"/24")
	s.NS.Tap("vmtap9", routedBridge)
	s.Put(t, &store.Subnet{Name: "routed", CIDR: "198.18.9.0/24", Gateway: routedGateway, DNS: []string{routedGateway},
		Pools: []store.Range{{Start: "198.18.9.100", End: "198.18.9.200"}}, Boot: store.BootVirtualMedia})

	const mac = "52:54:00:b3:c9:21"
	args, serial := lab.VMCommand(t, lab.VMConfig{Tap: "vmtap9", MAC: mac, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}})
	rf := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{Netns: s.NS, VM: args})
	vm := &bmcVM{Serial: serial}
	m := labsite.Machine("vm9", mac)
	m.Interfaces[0].Subnet = "routed"
	m.BMC = &store.BMC{Address: rf.Addr, Driver: "redfish", Username: rf.Username, Password: rf.Password}
	s.Put(t, m)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	fp := bmc.Fingerprint(rf.Certificate().Certificate[0])
	if err := s.API.Do(ctx, "POST", "/v1/machines/vm9/bmc/accept-certificate", map[string]string{"fingerprint": fp}, nil); err != nil {
		t.Fatalf("accept %s: %v", fp, err)
	}

	start := time.Now()
	s.Put(t, &store.Order{ID: "vprov", Action: store.OrderProvision, MachineID: "vm9",
		Template: labsite.TemplateName, Image: labsite.TestOSName, Values: map[string]string{"hostname": "vm-host-9"}})
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
	if !strings.Contains(string(b), "static address 198.18.9.100/24") {
		t.Errorf("the installer did not say it took its static address:\n%s", tailLines(b, 60))
	}
	w, err := s.Workflow(ctx, "vprov")
	if err != nil || w.BootAddr != "198.18.9.100" {
		t.Errorf("workflow %+v (%v): want it bound to 198.18.9.100", w, err)
	}
	for _, id := range []string{"vprov-media", "vprov-cd", "vprov-cycle"} {
		var j store.Job
		if err := s.API.Get(ctx, "jobs", id, &j); err != nil || j.State != store.JobSucceeded {
			t.Errorf("job %s: %+v (%v), want succeeded", id, j, err)
		}
	}
	image, _ := rf.Media()
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
