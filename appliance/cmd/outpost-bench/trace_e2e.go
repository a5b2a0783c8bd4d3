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
	"github.com/outposthq/outpost/internal/tracing"
)

// The trace.e2e benchmark's site and machine.
const (
	traceSite    = "bench-trace"
	traceMachine = "trace1"
	traceMAC     = "52:54:00:be:0c:15"
	traceHost    = "trace-host-1"
)

// machineTrace is central's answer to GET
// /v1/fleet/machines/{site}/{id}/trace: the machine's last order's
// trace.
type machineTrace struct {
	Spans        []tracing.Span       `json:"spans"`
	Phases       []tracing.Phase      `json:"phases"`
	Completeness tracing.Completeness `json:"completeness"`
}

// benchTraceE2E provisions one QEMU VM behind ipmi_sim through central,
// as the tracing e2e test does: centrald and a site (applianced in a
// namespace) synced with it, the machine registered and its provisioning
// ordered at central. Once the installed OS has printed the hostname it
// read from the metadata service, it reads the machine's trace from
// central (GET /v1/fleet/machines/{site}/{id}/trace), waiting up to 2
// minutes for the site to forward its last spans, and prints
//
//	BENCH trace.e2e spans=<n> services=<n> complete=<0|1> orphans=<n> phases=<n> total=<s>
//
// spans and services (centrald, applianced, outpost-agent) being the
// trace's, complete 1 when it has one root, no orphan and every phase
// of the waterfall, total the time from the order's placing to the
// first metadata request (the phases' span). It fails if the trace is
// not complete. Needs root, QEMU, ipmi_sim and `make images`.
func benchTraceE2E(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	centrald, applianced, remove, err := buildDaemons(ctx, "trace-e2e")
	if err != nil {
		return err
	}
	defer remove()
	var got machineTrace
	r := lab.NewRunner(ctx, "bench-trace-e2e", discardLog{log})
	err = r.Run(func(t lab.T) {
		got = traceProvision(t, centrald, applianced)
	})
	if err != nil {
		return err
	}
	c := got.Completeness
	complete := 0
	if c.Complete {
		complete = 1
	}
	var total time.Duration
	if n := len(got.Phases); n > 0 {
		total = got.Phases[n-1].End.Sub(got.Phases[0].Start)
	}
	fmt.Printf("BENCH trace.e2e spans=%d services=%d complete=%d orphans=%d phases=%d total=%.1f\n",
		c.Spans, len(c.Services), complete, c.Orphans, c.Phases, total.Seconds())
	for _, p := range got.Phases {
		fmt.Fprintf(os.Stderr, "trace.e2e: phase %-24s %6.1f s\n", p.Name, p.Duration().Seconds())
	}
	if !c.Complete {
		return fmt.Errorf("the trace is not complete: %+v", c)
	}
	return nil
}

// traceProvision provisions the VM through central and returns its
// trace as central has it once complete (or after 2 minutes of waiting).
func traceProvision(t lab.T, centrald, applianced string) machineTrace {
	imgs := lab.BuildImages(t)
	cen := labsite.StartCentral(t, centrald, freeLoopback(t), "-heartbeat", "1s", "-log-level", "info")
	s := labsite.Start(t, labsite.Config{Applianced: applianced, Images: imgs, LogLevel: "info",
		Sync: &labsite.Sync{Central: cen, SiteID: traceSite}})
	s.Put(t, labsite.Provisioning(t, imgs)...)
	args, serial := lab.VMCommand(t, lab.VMConfig{Tap: s.NewTap(t), MAC: traceMAC, MemoryMB: 1024,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	bmc := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "bench-trace-bmc", Netns: s.NS, StartArgs: args})
	put := func(path string, obj any) {
		if err := cen.Do("PUT", path, obj, nil); err != nil {
			t.Fatalf("central: PUT %s: %v", path, err)
		}
	}
	put("/v1/sites/"+traceSite+"/machines/"+traceMachine, map[string]any{
		"id": traceMachine, "hostname": traceMachine, "arch": "x86_64",
		"interfaces": []map[string]any{{"name": "eth0", "mac": traceMAC, "boot": true}},
		"bmc":        map[string]any{"address": bmc.Addr, "driver": "ipmi", "username": bmc.Username, "password": bmc.Password},
	})
	put("/v1/sites/"+traceSite+"/orders/trace-prov", map[string]any{
		"action": "provision", "machine_id": traceMachine, "template": labsite.TemplateName, "image": labsite.TestOSName,
		"values": map[string]string{"hostname": traceHost},
	})
	ctx := t.Context()
	want := regexp.MustCompile(`OUTPOST-TESTOS hostname=` + traceHost)
	if err := labsite.Poll(ctx, 10*time.Minute, func() error {
		if b, _ := os.ReadFile(serial); want.Match(b) {
			return nil
		}
		return fmt.Errorf("no line matching %q in the VM's console %s yet", want, serial)
	}); err != nil {
		t.Fatalf("the VM did not provision: %v", err)
	}
	var got machineTrace
	path := "/v1/fleet/machines/" + traceSite + "/" + traceMachine + "/trace"
	err := labsite.Poll(ctx, 2*time.Minute, func() error {
		if err := cen.Do("GET", path, nil, &got); err != nil {
			return err
		}
		if !got.Completeness.Complete {
			return fmt.Errorf("the trace is not complete yet: %+v", got.Completeness)
		}
		return nil
	})
	if err != nil && len(got.Spans) == 0 {
		t.Fatalf("central: GET %s: %v", path, err)
	}
	return got
}
