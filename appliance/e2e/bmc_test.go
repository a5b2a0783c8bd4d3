package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// bmcSite is a provisioning site whose BMC jobs give up after jobTimeout
// and calls after callTimeout, so that a test can outlive a job's
// deadline.
func bmcSite(t *testing.T, jobTimeout, callTimeout time.Duration) *labsite.Site {
	t.Helper()
	return startBMCSite(t, bmcSiteConfig(t, jobTimeout, callTimeout))
}

// bmcSiteConfig is the configuration of a bmcSite, for a test to add
// to (more flags, a central to sync with) before startBMCSite.
func bmcSiteConfig(t *testing.T, jobTimeout, callTimeout time.Duration) labsite.Config {
	t.Helper()
	return labsite.Config{Applianced: applianced(t), Images: lab.BuildImages(t), Args: []string{
		"-bmc-job-timeout", jobTimeout.String(), "-bmc-call-timeout", callTimeout.String(), "-bmc-poll-interval", "5s",
	}}
}

// startBMCSite starts the site cfg describes and stores what it needs to
// provision VMs (labsite.Provisioning).
func startBMCSite(t *testing.T, cfg labsite.Config) *labsite.Site {
	t.Helper()
	s := labsite.Start(t, cfg)
	s.Put(t, labsite.Provisioning(t, cfg.Images)...)
	return s
}

// bmcVM is a VM behind ipmi_sim: powering it on over IPMI starts QEMU,
// powering it off kills it. Its serial console is in the file Serial.
type bmcVM struct {
	BMC    *lab.IPMISim
	Serial string
	name   string // QEMU's -name, to find its process
}

func startBMCVM(t *testing.T, s *labsite.Site, mac string) *bmcVM {
	t.Helper()
	return startBMCVMConfig(t, s, lab.VMConfig{MAC: mac, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}})
}

// startBMCVMConfig is startBMCVM of the VM cfg describes, on a new tap of
// the site's bridge.
func startBMCVMConfig(t *testing.T, s *labsite.Site, cfg lab.VMConfig) *bmcVM {
	t.Helper()
	cfg.Tap = s.NewTap(t)
	mac := cfg.MAC
	args, serial := lab.VMCommand(t, cfg)
	name := ""
	for i, a := range args {
		if a == "-name" && i+1 < len(args) {
			name = args[i+1]
		}
	}
	sim := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "bmc-" + strings.ReplaceAll(mac, ":", ""), Netns: s.NS, StartArgs: args})
	return &bmcVM{BMC: sim, Serial: serial, name: name}
}

// running reports whether the VM's QEMU runs.
func (v *bmcVM) running() bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), v.name+"\x00") {
			return true
		}
	}
	return false
}

// waitSerial waits for a line of the VM's console file matching re, after
// the offset since. QEMU truncates the file when it starts again (a power
// cycle), and the offset then starts over.
func (v *bmcVM) waitSerial(ctx context.Context, re *regexp.Regexp, since int) (string, int, error) {
	var last error
	err := labsite.Poll(ctx, 10*time.Minute, func() error {
		b, err := os.ReadFile(v.Serial)
		if err != nil {
			last = err
			return err
		}
		if len(b) < since {
			since = 0
		}
		if len(b) > since {
			if m := re.Find(b[since:]); m != nil {
				return nil
			}
		}
		return fmt.Errorf("no line matching %q in %s yet", re, v.Serial)
	})
	if err != nil {
		return "", since, fmt.Errorf("%w (%v)", err, last)
	}
	b, _ := os.ReadFile(v.Serial)
	if len(b) < since {
		since = 0
	}
	loc := re.FindIndex(b[since:])
	if loc == nil {
		return "", since, fmt.Errorf("the line matching %q went away from %s", re, v.Serial)
	}
	return string(b[since+loc[0] : since+loc[1]]), since + loc[1], nil
}

func waitOrder(ctx context.Context, t *testing.T, s *labsite.Site, id string) *store.Order {
	t.Helper()
	var o store.Order
	err := labsite.Poll(ctx, 10*time.Minute, func() error {
		if err := s.API.Get(ctx, "orders", id, &o); err != nil {
			return err
		}
		if !o.Done() {
			return fmt.Errorf("order %s is %s", id, o.State)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("order %s: %v", id, err)
	}
	return &o
}

// TestBMCProvision: a machine behind ipmi_sim is provisioned by an order
// (the appliance sets its boot device, refused by the simulator, which is
// a warning, and powers it on over IPMI), boots its disk, and is
// deprovisioned by another (wiped, then powered off: QEMU is gone). The
// BMC password is nowhere in the appliance's output.
func TestBMCProvision(t *testing.T) {
	s := bmcSite(t, 40*time.Second, 10*time.Second)
	const mac = "52:54:00:b3:c0:01"
	vm := startBMCVM(t, s, mac)
	m := labsite.Machine("srv1", mac)
	m.BMC = &store.BMC{Address: vm.BMC.Addr, Driver: "ipmi", Username: vm.BMC.Username, Password: vm.BMC.Password}
	s.Put(t, m)
	if vm.running() {
		t.Fatal("the VM runs before anything powered it on")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()

	s.Put(t, &store.Order{ID: "prov1", Action: store.OrderProvision, MachineID: "srv1",
		Template: labsite.TemplateName, Image: labsite.TestOSName, Values: map[string]string{"hostname": "bmc-host-1"}})
	line, off, err := vm.waitSerial(ctx, testOSLine, 0)
	if err != nil {
		t.Fatalf("the machine did not provision: %v", err)
	}
	t.Logf("serial: %s", line)
	if !strings.Contains(line, "hostname=bmc-host-1") {
		t.Errorf("the test OS says %q", line)
	}
	if o := waitOrder(ctx, t, s, "prov1"); o.State != store.OrderSucceeded {
		t.Fatalf("order prov1: %s %q", o.State, o.Reason)
	}
	got, err := s.Machine(ctx, "srv1")
	if err != nil || got.State != store.StateProvisioned || got.Power != "on" {
		t.Errorf("machine after provisioning: %s, power %q (%v)", got.State, got.Power, err)
	}
	var pxe store.Job
	if err := s.API.Get(ctx, "jobs", "prov1-pxe", &pxe); err != nil || pxe.State != store.JobSucceeded || pxe.Warning == "" {
		t.Errorf("boot device job: %+v (%v), want succeeded with a warning", pxe, err)
	}

	s.Put(t, &store.Order{ID: "deprov1", Action: store.OrderDeprovision, MachineID: "srv1"})
	if _, _, err := vm.waitSerial(ctx, regexp.MustCompile(`wiped /dev/vda`), off); err != nil {
		t.Errorf("the wipe did not run: %v", err)
	}
	if o := waitOrder(ctx, t, s, "deprov1"); o.State != store.OrderSucceeded {
		t.Fatalf("order deprov1: %s %q", o.State, o.Reason)
	}
	if err := labsite.Poll(ctx, time.Minute, func() error {
		if vm.running() {
			return fmt.Errorf("QEMU %s still runs", vm.name)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	got, _ = s.Machine(ctx, "srv1")
	if got.State != store.StateReady || got.Power != "off" {
		t.Errorf("machine after deprovisioning: %s, power %q, want ready and off", got.State, got.Power)
	}
	checkNoPassword(t, s, vm.BMC.Password)
}

// checkNoPassword fails if the appliance's output or its events hold
// password.
func checkNoPassword(t *testing.T, s *labsite.Site, password string) {
	t.Helper()
	for _, f := range []string{s.Process().Stdout, s.Process().Stderr} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
		}
		if strings.Contains(string(b), password) {
			t.Errorf("the BMC password is in %s", f)
		}
	}
	events, err := s.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.Contains(fmt.Sprint(e), password) {
			t.Errorf("the BMC password is in event %d", e.Seq)
		}
	}
}

// bmcMachine stores a machine whose BMC is sim (or addr, if sim is nil).
func bmcMachine(t *testing.T, s *labsite.Site, id, mac string, sim *lab.IPMISim, addr string) {
	t.Helper()
	m := labsite.Machine(id, mac)
	m.BMC = &store.BMC{Address: addr, Driver: "ipmi", Username: "admin", Password: "dead-bmc-password"}
	if sim != nil {
		m.BMC.Address, m.BMC.Username, m.BMC.Password = sim.Addr, sim.Username, sim.Password
	}
	s.Put(t, m)
}

// TestBMCDeadDoesNotDelay: a BMC that never answers fails its job after
// the retries, with an event naming it, while a job on a live BMC placed
// at the same time completes first.
func TestBMCDeadDoesNotDelay(t *testing.T) {
	s := bmcSite(t, 20*time.Second, 3*time.Second)
	live := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "live", Netns: s.NS})
	bmcMachine(t, s, "live", "52:54:00:b3:c0:11", live, "")
	// Nothing listens on the site's address at this port.
	bmcMachine(t, s, "dead", "52:54:00:b3:c0:12", nil, labsite.ServerIP+":9")
	s.Put(t, &store.Order{ID: "on-dead", Action: store.OrderPowerOn, MachineID: "dead"},
		&store.Order{ID: "on-live", Action: store.OrderPowerOn, MachineID: "live"})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	liveDone := waitOrder(ctx, t, s, "on-live")
	if liveDone.State != store.OrderSucceeded {
		t.Errorf("on-live: %s %q", liveDone.State, liveDone.Reason)
	}
	var dead store.Order
	if err := s.API.Get(ctx, "orders", "on-dead", &dead); err != nil || dead.Done() {
		t.Errorf("on-dead ended (%s, %v) before on-live: the live BMC waited for the dead one", dead.State, err)
	}
	deadDone := waitOrder(ctx, t, s, "on-dead")
	if deadDone.State != store.OrderFailed || !strings.Contains(deadDone.Reason, labsite.ServerIP+":9") {
		t.Errorf("on-dead: %s %q, want failed naming the BMC", deadDone.State, deadDone.Reason)
	}
	if st, err := live.PowerState(ctx); err != nil || st != "on" {
		t.Errorf("live BMC: power %q (%v)", st, err)
	}
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		if e.Kind == "bmc.job.failed" && e.MachineID == "dead" && strings.Contains(e.Message, labsite.ServerIP+":9") {
			found = true
			t.Logf("event: %s", e.Message)
		}
	}
	if !found {
		t.Error("no bmc.job.failed event names the dead BMC")
	}
	checkNoPassword(t, s, "dead-bmc-password")
	checkNoPassword(t, s, live.Password)
}

// TestBMCJobSurvivesRestart: the appliance is killed while a power job is
// running (its BMC is frozen, so the call hangs) and started again; once
// the job's deadline has passed the new leader runs it again, and it
// completes once.
func TestBMCJobSurvivesRestart(t *testing.T) {
	s := bmcSite(t, 15*time.Second, 3*time.Second)
	sim := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "frozen", Netns: s.NS})
	bmcMachine(t, s, "m1", "52:54:00:b3:c0:21", sim, "")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	sim.Process.Signal(syscall.SIGSTOP)
	s.Put(t, &store.Order{ID: "on1", Action: store.OrderPowerOn, MachineID: "m1"})
	err := labsite.Poll(ctx, time.Minute, func() error {
		var j store.Job
		if err := s.API.Get(ctx, "jobs", "on1-power", &j); err != nil {
			return err
		}
		if j.State != store.JobRunning {
			return fmt.Errorf("job %s", j.State)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("the job runs against a frozen BMC: killing the appliance")
	s.Restart(t, true)
	sim.Process.Signal(syscall.SIGCONT)

	if o := waitOrder(ctx, t, s, "on1"); o.State != store.OrderSucceeded {
		t.Fatalf("order: %s %q", o.State, o.Reason)
	}
	var j store.Job
	if err := s.API.Get(ctx, "jobs", "on1-power", &j); err != nil || j.Attempt != 2 || j.State != store.JobSucceeded {
		t.Errorf("job: %+v (%v), want succeeded at its second attempt", j, err)
	}
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	succeeded := 0
	for _, e := range events {
		if e.Kind == "bmc.job.succeeded" && e.Fields["job"] == "on1-power" {
			succeeded++
		}
	}
	if succeeded != 1 {
		t.Errorf("the job succeeded %d times, want once", succeeded)
	}
	if st, err := sim.PowerState(ctx); err != nil || st != "on" {
		t.Errorf("BMC power %q (%v), want on", st, err)
	}
	checkNoPassword(t, s, sim.Password)
}
