package bmc

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/internal/testwait"
)

// vmRedfishBMC is the lab's Redfish BMC on loopback owning a QEMU VM
// (one NIC, one disk) in a namespace of its own.
func vmRedfishBMC(t *testing.T) *lab.RedfishBMC {
	t.Helper()
	lab.Require(t, "root", "qemu-system-x86_64")
	ns := lab.NewNetns(t, "rfvm")
	ns.Bridge("br0", "")
	ns.Tap("tap0", "br0")
	args, _ := lab.VMCommand(t, lab.VMConfig{Tap: "tap0", Disks: []string{labsite.NewDisk(t, 16<<20)}})
	return lab.StartRedfishBMC(t, lab.RedfishBMCConfig{VM: args, VMNetns: ns})
}

// TestRedfishVM: the appliance's Redfish path (bmclib's gofish provider
// through a Pool) drives a BMC that owns a real QEMU VM. Before its
// certificate is accepted the BMC gets no request and the VM stays off;
// with it accepted, power on starts QEMU, the power state is the VM's,
// PXE once puts the NIC first for the next boot only, a power cycle
// spends it, and power off ends QEMU.
func TestRedfishVM(t *testing.T) {
	bmc := vmRedfishBMC(t)
	var logs bytes.Buffer
	p := redfishPool(t, &logs, Config{})
	ctx := t.Context()

	// Trust on first use: refused, naming the certificate to accept.
	err := p.PowerOn(ctx, redfishCreds(bmc, ""))
	refusedCertificate(t, err, bmc, fingerprintOf(bmc), logs.String())
	if reqs := bmc.Requests(); len(reqs) > 0 || bmc.Power() != "Off" {
		t.Fatalf("a refused certificate: %d requests, power %s; want none and Off", len(reqs), bmc.Power())
	}
	c := redfishCreds(bmc, err.(*Error).Certificate)

	if err := p.SetBootPXE(ctx, c, BootOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once", "BootSourceOverrideMode": "Legacy"}
	if diff := cmp.Diff(want, bmc.BootOverride()); diff != "" {
		t.Errorf("boot override (-want +got):\n%s", diff)
	}
	if err := p.PowerOn(ctx, c); err != nil {
		t.Fatal(err)
	}
	if st, err := p.PowerState(ctx, c); err != nil || st != On {
		t.Fatalf("after power on: %q %v", st, err)
	}
	if got := bmc.BootOverride()["BootSourceOverrideEnabled"]; got != "Disabled" {
		t.Errorf("the once override after the boot it was for: %q, want Disabled", got)
	}
	if order, err := bmc.BootOrder(ctx); err != nil || order[0] != "rf-nic" {
		t.Errorf("boot order %v (%v), want the NIC first (the default)", order, err)
	}

	if err := p.SetBootPXE(ctx, c, BootOptions{Persistent: true}); err != nil {
		t.Fatal(err)
	}
	if err := p.PowerCycle(ctx, c); err != nil {
		t.Fatal(err)
	}
	if st, err := p.PowerState(ctx, c); err != nil || st != On {
		t.Fatalf("after power cycle: %q %v", st, err)
	}
	if got := bmc.BootOverride(); got["BootSourceOverrideEnabled"] != "Continuous" || got["BootSourceOverrideTarget"] != "Pxe" {
		t.Errorf("a continuous override after a power cycle: %v, want it kept", got)
	}
	if err := p.PowerOff(ctx, c); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "QEMU to end after power off", 30*time.Second, func() bool { return bmc.Power() == "Off" })
	if st, err := p.PowerState(ctx, c); err != nil || st != Off {
		t.Fatalf("after power off: %q %v", st, err)
	}
	noPassword(t, c.Password, logs.String())
}

// TestRedfishVMVirtualMedia: through the Pool, the BMC fetches an image
// over HTTP into its virtual CD drive (QEMU's CD-ROM holds it once the
// VM is on) and the next boot is from the CD, once; an error never
// shows the media URL, which may be a secret.
func TestRedfishVMVirtualMedia(t *testing.T) {
	bmc := vmRedfishBMC(t)
	var logs bytes.Buffer
	p := redfishPool(t, &logs, Config{})
	ctx := t.Context()
	c := redfishCreds(bmc, fingerprintOf(bmc))
	image := bytes.Repeat([]byte("outpost-iso"), 4096)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/media/secret-1.iso" {
			http.NotFound(w, r)
			return
		}
		w.Write(image)
	}))
	defer srv.Close()

	missing := srv.URL + "/media/secret-0.iso"
	err := p.InsertMedia(ctx, c, missing)
	if err == nil || strings.Contains(err.Error(), "secret-0") || strings.Contains(logs.String(), "secret-0") {
		t.Fatalf("a missing image: %v; want an error, and logs, without its URL:\n%s", err, logs.String())
	}
	if img, inserted := bmc.Media(); inserted || img != "" {
		t.Fatalf("a refused insert changed the drive: %q %v", img, inserted)
	}
	if err := p.InsertMedia(ctx, c, srv.URL+"/media/secret-1.iso"); err != nil {
		t.Fatal(err)
	}
	if err := p.SetBootCD(ctx, c, BootOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := bmc.BootOverride(); got["BootSourceOverrideTarget"] != "Cd" || got["BootSourceOverrideEnabled"] != "Once" {
		t.Fatalf("boot override %v, want Cd once", got)
	}
	if err := p.PowerOn(ctx, c); err != nil {
		t.Fatal(err)
	}
	file, err := bmc.CDFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, image) {
		t.Fatalf("QEMU's CD-ROM holds %s (%d bytes), not the image", file, len(got))
	}
	if got := bmc.BootOverride()["BootSourceOverrideEnabled"]; got != "Disabled" {
		t.Errorf("the CD once override after the boot: %q, want Disabled", got)
	}
	if err := p.InsertMedia(ctx, c, ""); err != nil {
		t.Fatal(err)
	}
	if file, err := bmc.CDFile(ctx); err != nil || file != "" {
		t.Errorf("after eject QEMU's CD-ROM holds %q (%v)", file, err)
	}
	noPassword(t, c.Password, logs.String())
}
