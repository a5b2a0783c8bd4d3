package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// provisionSite starts a site with what provisioning the test OS needs.
func provisionSite(t *testing.T) *labsite.Site {
	t.Helper()
	bin := applianced(t)
	imgs := lab.BuildImages(t)
	s := labsite.Start(t, labsite.Config{Applianced: bin, Images: imgs})
	s.Put(t, labsite.Provisioning(t, imgs)...)
	return s
}

// testOSLine is what the test OS prints once it has its metadata.
var testOSLine = regexp.MustCompile(`OUTPOST-TESTOS hostname=(\S*) instance-id=(\S*)`)

// TestProvisionVM is the main job end to end: a VM with an empty disk
// network-boots the installer, whose agent wipes the disk, writes the test
// OS image (while the appliance is killed and restarted under it),
// configures it and boots the installed kernel with kexec (the lab's
// install template: loaded with the installer's kexec-tools); the test OS fetches its metadata and prints the
// hostname it was given. TestProvisionArtifact installs with the reboot
// template: the VM boots its disk through its firmware.
func TestProvisionVM(t *testing.T) {
	s := provisionSite(t)
	const mac = "52:54:00:0e:2e:01"
	s.Put(t, labsite.Machine("vm1", mac), labsite.Workflow("wf1", "vm1", labsite.TestOSName, "testos-vm1"))

	vm := s.StartVM(t, lab.VMConfig{MAC: mac, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}})
	ctx, cancelTimeout := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// Restart the appliance as soon as the image starts streaming.
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		err := labsite.Poll(ctx, 10*time.Minute, func() error {
			w, err := s.Workflow(ctx, "wf1")
			if err != nil {
				return err
			}
			if a, ok := w.State.Action("write"); ok && a.Status == "running" {
				return nil
			}
			return fmt.Errorf("write not running yet (workflow %s)", w.Status())
		})
		if err != nil {
			t.Errorf("image.write never ran: %v", err)
			return
		}
		t.Logf("%6.1fs image.write is running: killing and restarting the appliance", time.Since(vm.Start).Seconds())
		s.Restart(t, true)
		t.Logf("%6.1fs the appliance leads again", time.Since(vm.Start).Seconds())
	}()

	go failOnWorkflowFailure(ctx, cancel, t, s, "wf1")
	line, err := vm.WaitSerial(ctx, testOSLine)
	if err != nil {
		t.Fatalf("the test OS did not print its metadata: %v (serial console in %s)", context.Cause(ctx), vm.Serial)
	}
	t.Logf("%6.1fs serial: %s", time.Since(vm.Start).Seconds(), line)
	<-restarted
	if m := testOSLine.FindStringSubmatch(line); m[1] != "testos-vm1" || m[2] != "vm1" {
		t.Errorf("the test OS says hostname=%s instance-id=%s, want testos-vm1 and vm1", m[1], m[2])
	}

	m, err := s.Machine(ctx, "vm1")
	if err != nil || m.State != store.StateProvisioned {
		t.Errorf("machine vm1: %+v (%v), want provisioned", m, err)
	}
	w, err := s.Workflow(ctx, "wf1")
	if err != nil || w.Status() != "succeeded" {
		t.Fatalf("workflow wf1: %v (%v), want succeeded", w.Status(), err)
	}
	// The installer's kexec-tools loaded the kernel: kexec_load, without
	// the checks that hash it (kexec_file_load is the fallback).
	if a, _ := w.State.Action("kexec"); !strings.Contains(a.Message, "(kexec_load)") {
		t.Errorf("kexec's result %q, want the kernel loaded with kexec_load", a.Message)
	}
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkTimeline(t, events, "vm1", labsite.InstallTemplate())
}

// failOnWorkflowFailure cancels ctx, with the reason as its cause, if
// workflow id fails or times out, so that a test waiting on a serial
// console fails at once.
func failOnWorkflowFailure(ctx context.Context, cancel context.CancelCauseFunc, t *testing.T, s *labsite.Site, id string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		w, err := s.Workflow(ctx, id)
		if err == nil && (w.Status() == "failed" || w.Status() == "timed_out") {
			cancel(fmt.Errorf("workflow %s %s: %s", id, w.Status(), w.State.Reason))
			return
		}
	}
}

// checkTimeline checks machine's events: the transitions of its workflow
// from template tpl (each action once, in the template's order)
// complete and in order, progress reported while the image was written,
// and sequence numbers and times that only go forward.
func checkTimeline(t *testing.T, events []store.Event, machine string, tpl *store.Template) {
	t.Helper()
	var got []string
	var progress int
	for i, e := range events {
		if i > 0 && (e.Seq != events[i-1].Seq+1 || e.Time.Before(events[i-1].Time)) {
			t.Errorf("event %d (seq %d, %s) does not follow event seq %d (%s)", i, e.Seq, e.Time, events[i-1].Seq, events[i-1].Time)
		}
		if e.MachineID != machine {
			continue
		}
		switch {
		case e.Kind == "action.progress":
			progress++
			continue
		case strings.HasPrefix(e.Kind, "workflow."), strings.HasPrefix(e.Kind, "action."):
			got = append(got, e.Kind+" "+e.Fields["action"])
		case e.Kind == "machine.state":
			got = append(got, e.Kind+" "+e.Fields["to"])
		}
	}
	want := []string{"workflow.created ", "machine.state provisioning", "workflow.running "}
	for _, a := range tpl.Actions {
		want = append(want, "action.running "+a.Name, "action.succeeded "+a.Name)
	}
	want = append(want, "workflow.succeeded ", "machine.state provisioned")
	if !slices.Equal(got, want) {
		t.Errorf("timeline of %s:\n got %q\nwant %q", machine, got, want)
	}
	if progress == 0 {
		t.Error("no progress was reported while the image was written")
	}
}

// TestProvisionBadChecksum: an image whose recorded sha256 is wrong fails
// its write after the retry, with the mismatch as the reason; the machine
// is failed and nothing after the write runs.
func TestProvisionBadChecksum(t *testing.T) {
	s := provisionSite(t)
	bad := labsite.Provisioning(t, s.Images)[2].(*store.Image)
	bad.Name, bad.SHA256 = "testos-badsum", strings.Repeat("0", 64)
	const mac = "52:54:00:0e:2e:02"
	s.Put(t, bad, labsite.Machine("vm2", mac), labsite.Workflow("wf2", "vm2", bad.Name, "vm2"))

	vm := s.StartVM(t, lab.VMConfig{MAC: mac, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	var w *store.Workflow
	err := labsite.Poll(ctx, 10*time.Minute, func() (err error) {
		if w, err = s.Workflow(ctx, "wf2"); err != nil {
			return err
		}
		if w.Status() != "failed" {
			return fmt.Errorf("workflow is %s", w.Status())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the workflow did not fail: %v (serial console in %s)", err, vm.Serial)
	}
	write, _ := w.State.Action("write")
	if write.Status != "failed" || write.Attempt != 2 || !strings.Contains(write.Message, "sha256 mismatch") {
		t.Errorf("write: %+v, want failed after 2 attempts with a sha256 mismatch", write)
	}
	for _, name := range []string{"configure", "kexec"} {
		if a, _ := w.State.Action(name); a.Status != "skipped" || a.Attempt != 0 {
			t.Errorf("%s: %+v, want skipped, never attempted", name, a)
		}
	}
	m, err := s.Machine(ctx, "vm2")
	if err != nil || m.State != store.StateFailed || !strings.Contains(m.Reason, "sha256 mismatch") {
		t.Errorf("machine vm2: %s %q (%v), want failed naming the sha256 mismatch", m.State, m.Reason, err)
	}
	// The site's own copy of the image (its artifact store imports the
	// files of its artifact directory) found the file does not hash to
	// the recorded sha256, and said so.
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(e store.Event) bool {
		return e.Kind == "artifact.corrupt" && e.Fields["sha256"] == bad.SHA256 && e.Fields["source"] == "artifact_dir"
	}) {
		t.Error("no artifact.corrupt event for the image whose sha256 is wrong")
	}
}

// testOSUpstream is the test OS image as an upstream URL the site pulls
// into its artifacts: the appliance's own artifact directory, over HTTP,
// stands in for a mirror past the site.
func testOSUpstream(t *testing.T, s *labsite.Site, name, sum string) *store.Image {
	t.Helper()
	fi, err := os.Stat(s.Images.TestOSGz)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Image{Name: name, Type: store.ImageOS, URL: labsite.BootURL + "/artifacts/" + filepath.Base(s.Images.TestOSGz),
		Format: "raw.gz", SHA256: sum, Size: uint64(fi.Size())}
}

// waitArtifact polls the site's record of digest d until state holds.
func waitArtifact(ctx context.Context, t *testing.T, s *labsite.Site, d string, want func(artifacts.Record) error) artifacts.Record {
	t.Helper()
	var rec artifacts.Record
	err := labsite.Poll(ctx, 2*time.Minute, func() error {
		if err := s.API.Get(ctx, "artifacts", d, &rec); err != nil {
			return err
		}
		return want(rec)
	})
	if err != nil {
		t.Fatalf("artifact %s: %v (last %+v)", d[:12], err, rec)
	}
	return rec
}

// TestProvisionArtifact: an image the site pulls from an upstream URL
// into its artifacts is installed from the appliance by digest: the
// workflow names /artifacts/sha256/<hex>, and the VM provisions from it,
// with the install template that reboots (labsite.RebootTemplate): the
// VM boots its disk through its firmware and iPXE.
func TestProvisionArtifact(t *testing.T) {
	s := provisionSite(t)
	sum := labsite.Provisioning(t, s.Images)[2].(*store.Image).SHA256
	const mac = "52:54:00:0e:2e:03"
	s.Put(t, testOSUpstream(t, s, "testos-pulled", sum), labsite.Machine("vm3", mac))
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	waitArtifact(ctx, t, s, sum, func(r artifacts.Record) error {
		if r.State != artifacts.StatePresent {
			return fmt.Errorf("state %s", r.State)
		}
		return nil
	})
	wf := labsite.Workflow("wf3", "vm3", "testos-pulled", "pulled-vm3")
	wf.Template = labsite.RebootTemplateName
	s.Put(t, wf)
	w, err := s.Workflow(ctx, "wf3")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := w.State.Plan.Action("write"); a.Args["url"] != "/artifacts/sha256/"+sum {
		t.Fatalf("the workflow writes from %q, want the site's artifact by digest", a.Args["url"])
	}
	vm := s.StartVM(t, lab.VMConfig{MAC: mac, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}})
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	go failOnWorkflowFailure(ctx, cancelCause, t, s, "wf3")
	line, err := vm.WaitSerial(ctx, testOSLine)
	if err != nil {
		t.Fatalf("the test OS did not print its metadata: %v (serial console in %s)", context.Cause(ctx), vm.Serial)
	}
	if m := testOSLine.FindStringSubmatch(line); m[1] != "pulled-vm3" {
		t.Errorf("the test OS says hostname=%s, want pulled-vm3", m[1])
	}
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkTimeline(t, events, "vm3", labsite.RebootTemplate())
}

// TestArtifactBadChecksumWaits: an image pulled from an upstream URL
// whose recorded sha256 is wrong is thrown away by the site's pull, which
// reports it corrupt; the order for it waits, saying why, and starts
// nothing; no node serves the bytes.
func TestArtifactBadChecksumWaits(t *testing.T) {
	s := provisionSite(t)
	bad := strings.Repeat("0", 63) + "1"
	m := labsite.Machine("vm4", "52:54:00:0e:2e:04")
	m.BMC = &store.BMC{Address: "198.18.0.254:623", Driver: "ipmi", Username: "admin", Password: "never-used"}
	s.Put(t, testOSUpstream(t, s, "testos-badsum", bad), m)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	order := &store.Order{ID: "o4", Action: store.OrderProvision, MachineID: "vm4", Template: labsite.TemplateName, Image: "testos-badsum"}
	if err := s.API.Put(ctx, "orders", "o4", order, nil); err != nil {
		t.Fatal(err)
	}
	rec := waitArtifact(ctx, t, s, bad, func(r artifacts.Record) error {
		if r.Pull == nil || !strings.Contains(r.Pull.Error, "corrupt") {
			return fmt.Errorf("no corrupt pull yet")
		}
		return nil
	})
	if rec.State == artifacts.StatePresent || len(rec.Nodes) != 0 {
		t.Errorf("record %+v: the corrupt artifact is held", rec)
	}
	var o store.Order
	if err := s.API.Get(ctx, "orders", "o4", &o); err != nil {
		t.Fatal(err)
	}
	if o.State != store.OrderWaiting || !strings.Contains(o.Reason, "image testos-badsum") || !strings.Contains(o.Reason, "corrupt") ||
		o.Workflow != "" || len(o.Jobs) != 0 {
		t.Errorf("order %+v, want waiting, naming the image and the corrupt pull, with nothing started", o)
	}
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(e store.Event) bool {
		return e.Kind == "artifact.corrupt" && e.Fields["sha256"] == bad && strings.HasPrefix(e.Fields["source"], "upstream")
	}) {
		t.Error("no artifact.corrupt event from the upstream pull")
	}
	res, err := s.NS.HTTPClient().Get(labsite.BootURL + "/artifacts/sha256/" + bad)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("the boot service answers %s for the corrupt artifact, want 404", res.Status)
	}
}

// TestAgentAndMetadataIsolation: a wrong credential gets 401 from the
// agent API and changes nothing; each machine reads only its own
// metadata from its address, and an address that is no machine's gets
// 404. Hosts on the boot network stand in for the machines.
func TestAgentAndMetadataIsolation(t *testing.T) {
	s := provisionSite(t)
	m1, m2 := labsite.Machine("m1", "52:54:00:0e:2e:11"), labsite.Machine("m2", "52:54:00:0e:2e:12")
	m1.Interfaces[0].IP, m1.Interfaces[0].Subnet = "198.18.0.11", labsite.SubnetName
	m2.Interfaces[0].IP, m2.Interfaces[0].Subnet = "198.18.0.12", labsite.SubnetName
	w1 := labsite.Workflow("wf-m1", "m1", labsite.TestOSName, "alpha")
	w1.Values["user_data"] = "#cloud-config\nsecret_of: m1\n"
	w2 := labsite.Workflow("wf-m2", "m2", labsite.TestOSName, "beta")
	w2.Values["user_data"] = "#cloud-config\nsecret_of: m2\n"
	s.Put(t, m1, m2, w1, w2)

	h1 := s.AttachHost(t, "h1", "52:54:00:0e:2e:11", "198.18.0.11/24")
	s.AttachHost(t, "h2", "52:54:00:0e:2e:12", "198.18.0.12/24")
	stranger := s.AttachHost(t, "h3", "52:54:00:0e:2e:13", "198.18.0.13/24")

	get := func(ns *lab.Netns, path string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", labsite.BootURL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		var res *http.Response
		err := labsite.Poll(t.Context(), 30*time.Second, func() (err error) { res, err = ns.HTTPClient().Do(req); return err })
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for path, want := range map[string]string{
		"/latest/meta-data/instance-id": "m1",
		"/latest/meta-data/hostname":    "alpha",
		"/latest/meta-data/local-ipv4":  "198.18.0.11",
		"/latest/user-data":             "secret_of: m1",
		"/nocloud/meta-data":            "local-hostname: alpha",
	} {
		code, body := get(h1, path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("h1 GET %s = %d %q, want 200 with %q", path, code, body, want)
		}
		if strings.Contains(body, "m2") || strings.Contains(body, "beta") {
			t.Errorf("h1 GET %s shows m2's data: %q", path, body)
		}
	}
	if code, body := get(h1, "/metadata/v1.json"); code != 200 || strings.Contains(body, "beta") || strings.Contains(body, "secret_of: m2") {
		t.Errorf("h1's JSON document: %d %s", code, body)
	}
	if code, body := get(stranger, "/latest/meta-data/instance-id"); code != http.StatusNotFound {
		t.Errorf("an address no machine has: %d %q, want 404", code, body)
	}

	// The agent API: a credential of the wrong shape, and one forged for
	// m2's workflow, change nothing.
	before, err := s.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	forged := "w" + strings.Repeat("A", 43) + ".wf-m2"
	for _, tok := range []string{"", "nonsense", forged} {
		code, body := get(h1, agentproto.PathWorkflow, "Authorization", "Bearer "+tok)
		if code != http.StatusUnauthorized {
			t.Errorf("agent API with credential %q: %d %s, want 401", tok, code, body)
		}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", labsite.BootURL+agentproto.PathReport,
			strings.NewReader(`{"action":"wipe","attempt":1,"kind":"start"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := h1.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("report with credential %q: %d, want 401", tok, res.StatusCode)
		}
	}
	after, err := s.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("refused agent requests recorded events: %+v", after[len(before):])
	}
	w, err := s.Workflow(t.Context(), "wf-m2")
	if err != nil || w.Status() != "pending" {
		t.Errorf("wf-m2 after forged reports: %v (%v), want pending", w.Status(), err)
	}
	for _, f := range []string{s.Process().Stdout, s.Process().Stderr} {
		if raw, err := os.ReadFile(f); err != nil || strings.Contains(string(raw), forged[1:30]) {
			t.Errorf("applianced's output %s: %v, or it holds the credential", f, err)
		}
	}
}

// TestDiscoveryVM: a VM whose MAC the site does not know boots the
// installer in discovery mode; its agent reports the hardware, which
// creates the machine, and then waits. The workflow an operator creates
// for the discovered machine reaches that same agent, which runs it.
func TestDiscoveryVM(t *testing.T) {
	s := provisionSite(t)
	const mac = "52:54:00:0e:2e:21"
	vm := s.StartVM(t, lab.VMConfig{MAC: mac, MemoryMB: 1024, Disks: []string{labsite.NewDisk(t, 256<<20)}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	const id = "m-5254000e2e21"
	var m *store.Machine
	err := labsite.Poll(ctx, 5*time.Minute, func() (err error) {
		m, err = s.Machine(ctx, id)
		return err
	})
	if err != nil {
		t.Fatalf("discovery created no machine %s: %v (serial console in %s)", id, err, vm.Serial)
	}
	t.Logf("%6.1fs discovered: %+v", time.Since(vm.Start).Seconds(), *m.Hardware)
	if m.State != store.StateDiscovered || m.Hardware == nil || m.Hardware.CPUs < 1 || m.Hardware.MemoryBytes < 512<<20 {
		t.Errorf("discovered machine: state %s, hardware %+v", m.State, m.Hardware)
	}
	if len(m.Disks) != 1 || m.Disks[0].Name != "vda" || m.Disks[0].Size != 256<<20 {
		t.Errorf("discovered disks: %+v, want vda of 256 MiB", m.Disks)
	}
	if len(m.Interfaces) != 1 || m.Interfaces[0].MAC != mac || !m.Interfaces[0].Boot {
		t.Errorf("discovered interfaces: %+v, want %s, the boot interface", m.Interfaces, mac)
	}

	// The agent waits in discovery mode; a workflow for the machine
	// reaches it, and it runs it. (TestProvisionVM installs a disk; a
	// one-action workflow shows the hand-over.)
	s.Put(t, &store.Template{Name: "probe", Actions: []store.Action{
		{Name: "probe", Type: "exec", Args: map[string]string{"command": "test -b /dev/vda"}}}},
		&store.Workflow{ID: "wf-discovered", MachineID: id, Template: "probe"})
	var w *store.Workflow
	err = labsite.Poll(ctx, 5*time.Minute, func() (err error) {
		if w, err = s.Workflow(ctx, "wf-discovered"); err != nil {
			return err
		}
		if !w.Status().Final() {
			return fmt.Errorf("workflow %s", w.Status())
		}
		return nil
	})
	if err != nil || w.Status() != "succeeded" {
		t.Fatalf("the waiting agent did not run the workflow: %v, %v (serial console in %s)", w.Status(), err, vm.Serial)
	}
	if m, err := s.Machine(ctx, id); err != nil || m.State != store.StateProvisioned {
		t.Errorf("discovered machine after its workflow: %+v (%v)", m, err)
	}
}
