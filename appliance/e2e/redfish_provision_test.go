package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// redfishVM is a VM behind the lab's Redfish BMC, in the site's
// namespace: the BMC starts QEMU on power on and kills it on power off.
type redfishVM struct {
	BMC *lab.RedfishBMC
	vm  *bmcVM // its serial console
}

func startRedfishVM(t *testing.T, s *labsite.Site, mac string) *redfishVM {
	t.Helper()
	args, serial := lab.VMCommand(t, lab.VMConfig{Tap: s.NewTap(t), MAC: mac, MemoryMB: 1024,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	rf := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{Netns: s.NS, VM: args})
	return &redfishVM{BMC: rf, vm: &bmcVM{Serial: serial}}
}

// acceptPresented accepts, through the API, the certificate the machine's
// BMC presented and the appliance refused.
func acceptPresented(ctx context.Context, t *testing.T, s *labsite.Site, id string) string {
	t.Helper()
	m, err := s.Machine(ctx, id)
	if err != nil || m.BMC == nil || m.BMC.Certificate == nil || m.BMC.Certificate.Presented == "" {
		t.Fatalf("machine %s shows no presented certificate: %+v (%v)", id, m.BMC, err)
	}
	fp := m.BMC.Certificate.Presented
	if err := s.API.Do(ctx, "POST", "/v1/machines/"+id+"/bmc/accept-certificate", map[string]string{"fingerprint": fp}, nil); err != nil {
		t.Fatalf("accept %s: %v", fp, err)
	}
	return fp
}

// TestRedfishProvision: a machine behind the lab's Redfish BMC (a QEMU
// VM it starts on power on). The appliance first refuses the BMC's
// self-signed certificate (the power-on order fails, the VM stays off,
// the BMC gets no request); once an operator accepts it, a provision
// order sets PXE once through Redfish (no warning: the BMC takes it),
// powers the VM on, and the VM network-boots, installs and boots its
// disk; the once override is spent. A deprovision order wipes it and
// powers it off (QEMU ends). The password is nowhere in the appliance's
// output or events.
func TestRedfishProvision(t *testing.T) {
	s := bmcSite(t, 40*time.Second, 10*time.Second)
	const mac = "52:54:00:b3:c0:21"
	rv := startRedfishVM(t, s, mac)
	m := labsite.Machine("rf1", mac)
	m.BMC = &store.BMC{Address: rv.BMC.Addr, Driver: "redfish", Username: rv.BMC.Username, Password: rv.BMC.Password}
	s.Put(t, m)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()

	s.Put(t, &store.Order{ID: "on0", Action: store.OrderPowerOn, MachineID: "rf1"})
	if o := waitOrder(ctx, t, s, "on0"); o.State != store.OrderFailed || !strings.Contains(o.Reason, "accept-certificate") {
		t.Fatalf("order on0 before the certificate is accepted: %s %q", o.State, o.Reason)
	}
	if reqs := rv.BMC.Requests(); len(reqs) > 0 || rv.BMC.Power() != "Off" {
		t.Fatalf("a refused certificate: %d requests, power %s", len(reqs), rv.BMC.Power())
	}
	acceptPresented(ctx, t, s, "rf1")

	start := time.Now()
	s.Put(t, &store.Order{ID: "prov1", Action: store.OrderProvision, MachineID: "rf1",
		Template: labsite.TemplateName, Image: labsite.TestOSName, Values: map[string]string{"hostname": "rf-host-1"}})
	line, off, err := rv.vm.waitSerial(ctx, testOSLine, 0)
	if err != nil {
		t.Fatalf("the machine did not provision: %v", err)
	}
	t.Logf("serial after %s: %s", time.Since(start).Round(time.Second), line)
	if !strings.Contains(line, "hostname=rf-host-1") {
		t.Errorf("the test OS says %q", line)
	}
	if o := waitOrder(ctx, t, s, "prov1"); o.State != store.OrderSucceeded {
		t.Fatalf("order prov1: %s %q", o.State, o.Reason)
	}
	var pxe store.Job
	if err := s.API.Get(ctx, "jobs", "prov1-pxe", &pxe); err != nil || pxe.State != store.JobSucceeded || pxe.Warning != "" {
		t.Errorf("boot device job: %+v (%v), want succeeded without a warning", pxe, err)
	}
	if got := rv.BMC.BootOverride(); got["BootSourceOverrideEnabled"] != "Disabled" {
		t.Errorf("boot override after provisioning: %v, want the once override spent", got)
	}

	s.Put(t, &store.Order{ID: "deprov1", Action: store.OrderDeprovision, MachineID: "rf1"})
	if _, _, err := rv.vm.waitSerial(ctx, regexp.MustCompile(`wiped /dev/vda`), off); err != nil {
		t.Errorf("the wipe did not run: %v", err)
	}
	if o := waitOrder(ctx, t, s, "deprov1"); o.State != store.OrderSucceeded {
		t.Fatalf("order deprov1: %s %q", o.State, o.Reason)
	}
	if err := labsite.Poll(ctx, time.Minute, func() error {
		if p := rv.BMC.Power(); p != "Off" {
			return fmt.Errorf("the BMC says %s", p)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	checkNoPassword(t, s, rv.BMC.Password)
}
