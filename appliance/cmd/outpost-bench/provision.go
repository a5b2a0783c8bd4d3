package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// provisionSerial is where provision.e2e keeps each run's serial console.
var provisionSerial = flag.String("provision-serial", "",
	"directory where provision.e2e writes each VM's serial console, every line stamped with when it came (seconds from the VM's start), as <template>-<boot>.log")

// benchProvisionE2E provisions one QEMU VM end to end, as the e2e test
// and the demo do, once with each install template of the lab (kexec:
// labsite.InstallTemplate, the demo's; reboot: labsite.RebootTemplate),
// network-booting iPXE (boot=pxe), and once as a Secure Boot machine
// (boot=secureboot: OVMF enforcing Secure Boot with Microsoft's keys boots
// Debian's signed shim, GRUB and kernel, and labsite.SecureBootTemplate
// writes the EFI test OS and reboots), once as a UEFI machine that boots
// by UEFI HTTP boot instead of PXE (boot=http: OVMF's PXE client off, it
// fetches ipxe.efi over HTTP; no TFTP), and once provisioned through
// virtual media on a subnet without DHCP (boot=vmedia, provisionVMedia,
// whose phases differ: see there), each on a site of its own, and splits
// the time into phases that follow each other:
//
//	dhcp            VM start → its first lease (firmware and PXE DHCP)
//	installer_boot  → the image starts streaming (iPXE fetches the
//	                installer, the kernel boots, the agent wipes the disk)
//	image_write     → the image is written and verified
//	os_boot         → the installed OS printed its first line (file.write,
//	                then kexec; or reboot, firmware, iPXE, boot loader)
//	os_metadata     → it printed the hostname it read from the metadata
//	                service (its modules, DHCP, the metadata requests)
//
// appliance_cpu is the CPU time applianced used from its start to the end.
// The VM runs under software emulation (TCG), so the guest's phases are
// slower than on hardware; the appliance's share is what Outpost controls.
func benchProvisionE2E(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	dir, err := os.MkdirTemp("", "outpost-bench-provision-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildApplianced(ctx, dir)
	if err != nil {
		return err
	}
	cases, err := selectProvisionRows(*provisionRows)
	if err != nil {
		return err
	}
	lines := make([][]string, len(cases))
	// The rows' runs are interleaved (A, B, A, B...), so that a change in
	// the machine's load falls on each alike.
	for range *provisionRuns {
		for i, c := range cases {
			run := c.run
			if run == nil {
				run = provisionOnce
			}
			line, err := run(ctx, log, bin, c)
			if err != nil {
				return fmt.Errorf("template %s, boot %s: %w", c.template, c.boot, err)
			}
			fmt.Printf("BENCH provision.e2e template=%s boot=%s%s %s\n", c.label, c.boot, c.archField(), line)
			lines[i] = append(lines[i], line)
		}
	}
	if *provisionRuns > 1 {
		for i, c := range cases {
			fmt.Printf("BENCH provision.e2e template=%s boot=%s%s runs=%d median %s\n", c.label, c.boot, c.archField(), *provisionRuns, medianFields(lines[i]))
		}
	}
	return nil
}

// provisionCase is one row of provision.e2e.
type provisionCase struct {
	label, template, boot string
	// secureBoot makes the machine a Secure Boot one: its firmware
	// enforces Secure Boot (and has no iPXE option ROM), the site gives it
	// shim, and it installs the EFI test OS.
	secureBoot bool
	// httpBoot makes the machine a UEFI one that boots by UEFI HTTP boot
	// (OVMF's PXE client off, lab.VMConfig HTTPBoot): it fetches ipxe.efi
	// over HTTP, not TFTP.
	httpBoot bool
	// run provisions the row's machine and returns its line's figures;
	// nil is provisionOnce, a machine that network-boots on the site's
	// boot network.
	run func(ctx context.Context, log *slog.Logger, bin string, c provisionCase) (string, error)
	// arch is lab.Arm64 for an arm64 machine (provision_arm64vm.go), ""
	// for x86-64.
	arch string
}

var provisionCases = []provisionCase{
	{label: "kexec", template: labsite.TemplateName, boot: "pxe"},
	{label: "reboot", template: labsite.RebootTemplateName, boot: "pxe"},
	{label: "reboot", template: labsite.SecureBootTemplateName, boot: "secureboot", secureBoot: true},
	{label: "kexec", template: labsite.TemplateName, boot: "http", httpBoot: true},
	{label: "kexec", template: labsite.TemplateName, boot: "vmedia", run: provisionVMedia},
	arm64Case,
}

// Which rows of provision.e2e run, and how many times each.
var (
	provisionRows = flag.String("provision-rows", "",
		"comma-separated rows of provision.e2e to run, each as template/boot (kexec/pxe, reboot/pxe, reboot/secureboot, kexec/http, kexec/vmedia; reboot/pxe/arm64 for the arm64 row); default all that -provision-arch lets run")
	provisionRuns = flag.Int("provision-runs", 1,
		"how many times provision.e2e runs each row, interleaved; above 1 it also prints each row's medians")
)

// selectProvisionRows returns the rows list names (for "", all of
// them), in provisionCases' order; a name that is no row is an error.
func selectProvisionRows(list string) ([]provisionCase, error) {
	if *provisionRuns < 1 {
		return nil, fmt.Errorf("-provision-runs %d: want at least 1", *provisionRuns)
	}
	if strings.TrimSpace(list) == "" {
		var rows []provisionCase
		for _, c := range provisionCases {
			if c.selected() {
				rows = append(rows, c)
			}
		}
		return rows, nil
	}
	want := make(map[string]bool)
	for _, name := range strings.Split(list, ",") {
		want[strings.TrimSpace(name)] = true
	}
	var rows []provisionCase
	var names []string
	for _, c := range provisionCases {
		name := c.rowName()
		names = append(names, name)
		if want[name] {
			rows = append(rows, c)
			delete(want, name)
		}
	}
	for name := range want {
		return nil, fmt.Errorf("-provision-rows: no row %q (have %s)", name, strings.Join(names, ","))
	}
	return rows, nil
}

// rowName is the row's name in -provision-rows: template/boot, and
// /arch for another architecture than x86-64.
func (c provisionCase) rowName() string {
	if c.arch != "" {
		return c.label + "/" + c.boot + "/" + c.arch
	}
	return c.label + "/" + c.boot
}

// medianFields is the median of each key=value figure across lines
// (each a row's figures from one run), in the first line's order.
func medianFields(lines []string) string {
	values := make(map[string][]float64)
	var keys []string
	for _, l := range lines {
		for _, f := range strings.Fields(l) {
			k, v, ok := strings.Cut(f, "=")
			x, err := strconv.ParseFloat(v, 64)
			if !ok || err != nil {
				continue
			}
			if _, seen := values[k]; !seen {
				keys = append(keys, k)
			}
			values[k] = append(values[k], x)
		}
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		xs := values[k]
		slices.Sort(xs)
		m := xs[len(xs)/2]
		if len(xs)%2 == 0 {
			m = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
		}
		out[i] = fmt.Sprintf("%s=%.2f", k, m)
	}
	return strings.Join(out, " ")
}

// provisionOnce provisions a VM as c says on a new site and returns the
// line's measurements.
func provisionOnce(ctx context.Context, log *slog.Logger, bin string, c provisionCase) (string, error) {
	var line string
	r := lab.NewRunner(ctx, "bench-provision", discardLog{log})
	err := r.Run(func(t lab.T) {
		imgs := lab.BuildImages(t)
		s := labsite.Start(t, labsite.Config{Applianced: bin, Images: imgs, LogLevel: "info"})
		s.Put(t, labsite.Provisioning(t, imgs)...)
		const mac = "52:54:00:be:0c:01"
		m := labsite.Machine("bench", mac)
		wf := labsite.Workflow("bench", "bench", labsite.TestOSName, "bench-1")
		wf.Template = c.template
		vmc := lab.VMConfig{MAC: mac, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}}
		if c.secureBoot {
			s.Put(t, labsite.TestOSEFIImage(t, imgs), labsite.SecureBootTemplate())
			m.SecureBoot = true
			wf.Values["image"] = labsite.TestOSEFIName
			vmc.Firmware, vmc.DisableNICROM = lab.SecureBoot, true
		}
		if c.httpBoot {
			vmc.Firmware, vmc.HTTPBoot = lab.UEFI, true
		}
		if c.arch == lab.Arm64 {
			arm64Setup(t, s, imgs, m, wf, &vmc)
		}
		s.Put(t, m, wf)
		vm := s.StartVM(t, vmc)
		wctx, cancel := context.WithTimeout(ctx, c.timeout())
		defer cancel()
		defer recordSerial(wctx, log, vm.Serial, vm.Start, strings.ReplaceAll(c.rowName(), "/", "-"))()
		var osUp time.Time
		for _, re := range []string{`OUTPOST-TESTOS-BOOTED from disk`, `OUTPOST-TESTOS hostname=bench-1`} {
			if _, err := vm.WaitSerial(wctx, regexp.MustCompile(re)); err != nil {
				t.Fatalf("the VM did not provision: %v (serial console in %s)", err, vm.Serial)
			}
			if osUp.IsZero() {
				osUp = time.Now()
			}
		}
		end := time.Now()
		ph, cpu := siteFigures(ctx, t, s, "bench")
		if ph.lease.IsZero() {
			t.Fatal("the events show no lease")
		}
		line = fmt.Sprintf("total=%.1f dhcp=%.1f installer_boot=%.1f image_write=%.1f os_boot=%.1f os_metadata=%.1f appliance_cpu=%.2f",
			end.Sub(vm.Start).Seconds(), ph.lease.Sub(vm.Start).Seconds(), ph.writeStart.Sub(ph.lease).Seconds(),
			ph.writeEnd.Sub(ph.writeStart).Seconds(), osUp.Sub(ph.writeEnd).Seconds(), end.Sub(osUp).Seconds(), cpu)
	})
	return line, err
}

// recordSerial stamps the lines of the serial console in the file
// serial from start on, until the function it returns is called, which
// prints when each step came (as name) and, with -provision-serial,
// saves the stamped console as <name>.log.
func recordSerial(ctx context.Context, log *slog.Logger, serial string, start time.Time, name string) func() {
	clock := watchSerial(ctx, serial, start)
	return func() {
		clock.stop()
		clock.report(os.Stderr, name)
		if *provisionSerial != "" {
			if err := clock.save(filepath.Join(*provisionSerial, name+".log")); err != nil {
				log.Warn("save the serial console", "err", err)
			}
		}
	}
}

// siteFigures reads the site's events for machine's phases, and the CPU
// time its applianced has used so far.
func siteFigures(ctx context.Context, t lab.T, s *labsite.Site, machine string) (provisionPhases, float64) {
	t.Helper()
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := cpuSeconds(s.Process().Pid())
	if err != nil {
		t.Fatal(err)
	}
	ph, err := phases(events, machine)
	if err != nil {
		t.Fatal(err)
	}
	return ph, cpu
}

// provisionPhases are the events that split a provisioning run: the
// machine's first lease (zero where no DHCP came, as on a virtual-media
// subnet), its first power-on event (zero when nothing powered it on
// through a BMC), and the image write's start and end.
type provisionPhases struct {
	lease, powerOn, writeStart, writeEnd time.Time
}

// phases finds machine's phases in events; the write's start and end
// must be there.
func phases(events []store.Event, machine string) (provisionPhases, error) {
	var p provisionPhases
	for _, e := range events {
		if e.MachineID != machine {
			continue
		}
		switch {
		case p.lease.IsZero() && strings.HasPrefix(e.Kind, "dhcp."):
			p.lease = e.Time
		case p.powerOn.IsZero() && e.Kind == "power.on":
			p.powerOn = e.Time
		case e.Kind == "action.running" && e.Fields["action"] == "write" && p.writeStart.IsZero():
			p.writeStart = e.Time
		case e.Kind == "action.succeeded" && e.Fields["action"] == "write":
			p.writeEnd = e.Time
		}
	}
	if p.writeStart.IsZero() || p.writeEnd.IsZero() {
		return p, fmt.Errorf("the events lack the image write: %+v", p)
	}
	return p, nil
}

// cpuSeconds is the user and system CPU time process pid has used.
func cpuSeconds(pid int) (float64, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from its closing parenthesis. utime and stime are fields 14 and 15.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	const clkTck = 100 // USER_HZ on Linux
	return (ut + st) / clkTck, nil
}

// discardLog sends the lab's lines to the benchmark's log at debug level.
type discardLog struct{ log *slog.Logger }

func (d discardLog) Write(p []byte) (int, error) {
	d.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
