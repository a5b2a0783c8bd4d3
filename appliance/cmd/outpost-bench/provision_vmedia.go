package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/vmedia"
)

// provisionVMedia is the boot=vmedia row of provision.e2e: the
// virtual-media provision of e2e's TestVirtualMediaProvision. A VM on a
// routed subnet where Outpost answers no DHCP, behind the lab's Redfish
// BMC (QEMU driven over QMP), is provisioned by an order: the appliance
// builds the machine's boot ISO, the BMC inserts it as its virtual CD
// and boots it once, and the installer, on its static address, installs
// the test OS with the kexec template. The clock starts at the order;
// its phases are those of the network-booted rows where they apply:
//
//	media           order → the BMC powered the VM on (the ISO built
//	                and inserted, the boot override set), in place of
//	                dhcp, which there is none of on that subnet
//	installer_boot  → the image starts streaming (firmware, ISOLINUX,
//	                the installer's kernel and agent)
//	image_write     → the image is written and verified
//	os_boot         → the installed OS printed its first line
//
// There is no os_metadata: the test OS asks DHCP for its address before
// it reads its metadata, and the routed subnet gives none, so total ends
// at the installed OS's first line.
func provisionVMedia(ctx context.Context, log *slog.Logger, bin string, c provisionCase) (string, error) {
	var line string
	r := lab.NewRunner(ctx, "bench-provision-vmedia", discardLog{log})
	err := r.Run(func(t lab.T) {
		lab.Require(t, "xorriso", vmedia.DefaultIsolinux, vmedia.DefaultLdlinux)
		imgs := lab.BuildImages(t)
		s := labsite.Start(t, labsite.Config{Applianced: bin, Images: imgs, LogLevel: "info"})
		s.Put(t, labsite.Provisioning(t, imgs)...)
		vm := s.AddVMediaMachine(t, "bench", "52:54:00:be:0c:09")
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		start := time.Now()
		defer recordSerial(wctx, log, vm.Serial, start, c.template+"-"+c.boot)()
		s.Put(t, labsite.ProvisionOrder("bench", "bench", "bench-1"))
		if err := waitFileLine(wctx, vm.Serial, regexp.MustCompile(`OUTPOST-TESTOS-BOOTED from disk`)); err != nil {
			t.Fatalf("the VM did not provision: %v (serial console in %s)", err, vm.Serial)
		}
		end := time.Now()
		ph, cpu := siteFigures(ctx, t, s, "bench")
		if ph.powerOn.IsZero() {
			t.Fatal("the events show no power on")
		}
		line = fmt.Sprintf("total=%.1f media=%.1f installer_boot=%.1f image_write=%.1f os_boot=%.1f appliance_cpu=%.2f",
			end.Sub(start).Seconds(), ph.powerOn.Sub(start).Seconds(), ph.writeStart.Sub(ph.powerOn).Seconds(),
			ph.writeEnd.Sub(ph.writeStart).Seconds(), end.Sub(ph.writeEnd).Seconds(), cpu)
	})
	return line, err
}

// waitFileLine waits until the file path holds a match of re.
func waitFileLine(ctx context.Context, path string, re *regexp.Regexp) error {
	return labsite.Poll(ctx, 10*time.Minute, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !re.Match(b) {
			return fmt.Errorf("no line matching %q yet", re)
		}
		return nil
	})
}
