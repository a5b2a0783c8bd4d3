package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/bmc"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/vmedia"
	"github.com/outposthq/outpost/internal/testwait"
)

// TestVirtualMediaJobs: a deprovision order for a machine on a subnet
// that boots from virtual media runs insert_media, boot_cd and
// power_cycle through the real bmc pool against the lab's Redfish BMC.
// The BMC fetches the order's ISO (built by xorriso, holding the
// machine's static address and its workflow's credential) from the
// boot HTTP service at an unguessable /vmedia/ path; the CD is its next
// boot, once. The path is in no log, event or job; once the order has
// ended (its workflow cancelled), the path answers 404 and the ISO file
// is removed.
func TestVirtualMediaJobs(t *testing.T) {
	lab.Require(t, "xorriso", vmedia.DefaultIsolinux, vmedia.DefaultLdlinux)
	n := apptest.Start(t)
	logs := &apptest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), nil))
	artDir := t.TempDir()
	for _, f := range []string{"vmlinuz", "initrd"} {
		if err := os.WriteFile(filepath.Join(artDir, f), []byte("installer "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	boot := httptest.NewServer(mux)
	t.Cleanup(boot.Close)
	isoDir := filepath.Join(t.TempDir(), "vmedia")
	media, err := newMediaServer(mediaConfig{DB: n.DB, Credentials: agentCredentials(n.Key), ArtifactDir: artDir,
		BootURL: boot.URL, Dir: isoDir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(mediaPrefix, media)
	runJobs(t, n, media, log)

	rf := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{})
	admin := client.New(n.URL, n.Token)
	put := func(plural, key string, obj any) {
		t.Helper()
		if err := admin.Put(t.Context(), plural, key, obj, nil); err != nil {
			t.Fatalf("put %s %s: %v", plural, key, err)
		}
	}
	put("subnets", "routed", &store.Subnet{Name: "routed", CIDR: "198.18.5.0/24", Gateway: "198.18.5.1", DNS: []string{"198.18.5.1"},
		Pools: []store.Range{{Start: "198.18.5.100", End: "198.18.5.200"}}, Boot: store.BootVirtualMedia})
	put("images", "installer", &store.Image{Name: "installer", Type: store.ImageInstaller, Kernel: "vmlinuz", Initrd: "initrd", Cmdline: "panic=10"})
	put("templates", "wipe", &store.Template{Name: "wipe", Actions: []store.Action{{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}}}})
	m := apptest.Machine("m1", 1)
	m.Interfaces[0].IP, m.Interfaces[0].Subnet = "198.18.5.20", "routed"
	m.BMC = &store.BMC{Address: rf.Addr, Driver: "redfish", Username: rf.Username, Password: rf.Password}
	put("machines", "m1", m)
	fp := bmc.Fingerprint(rf.Certificate().Certificate[0])
	if err := admin.Do(t.Context(), "POST", "/v1/machines/m1/bmc/accept-certificate", map[string]string{"fingerprint": fp}, nil); err != nil {
		t.Fatalf("accept %s: %v", fp, err)
	}

	put("orders", "d1", &store.Order{ID: "d1", Action: store.OrderDeprovision, MachineID: "m1"})
	for _, id := range []string{"d1-media", "d1-cd", "d1-cycle"} {
		if j := waitJob(t, admin, id); j.State != store.JobSucceeded {
			t.Fatalf("job %s: %s %q", id, j.State, j.Error)
		}
	}
	image, inserted := rf.Media()
	if !inserted || !strings.HasPrefix(image, boot.URL+mediaPrefix) || !strings.HasSuffix(image, ".iso") {
		t.Fatalf("the BMC's CD: %q inserted %v, want an ISO of %s", image, inserted, boot.URL+mediaPrefix)
	}
	var cdOnce bool // the power cycle's boot has spent the override since
	for _, q := range rf.Requests() {
		cdOnce = cdOnce || (q.Method == http.MethodPatch && strings.Contains(q.Body, `"Cd"`) && strings.Contains(q.Body, `"Once"`))
	}
	if !cdOnce {
		t.Errorf("the BMC was not told to boot the CD once: %v", rf.Requests())
	}
	iso := get(t, image, http.StatusOK)
	if !strings.Contains(iso, "outpost.ip=198.18.5.20/24") || !strings.Contains(iso, "outpost.token=w") || !strings.Contains(iso, "panic=10") {
		t.Errorf("the ISO (%d bytes) lacks the machine's static address, a workflow credential or the installer's panic=10", len(iso))
	}
	name := strings.TrimSuffix(strings.TrimPrefix(image, boot.URL+mediaPrefix), ".iso")
	other := "0" // a name one digit off is not served
	if name[0] == '0' {
		other = "1"
	}
	get(t, boot.URL+mediaPrefix+other+name[1:]+".iso", http.StatusNotFound)
	checkNotShown(t, admin, logs, name)
	if files, _ := os.ReadDir(isoDir); len(files) != 1 || strings.Contains(files[0].Name(), name) {
		t.Errorf("ISO files %v: want one, not named as its URL (a file's name may end up in an error)", files)
	}

	if err := admin.Do(t.Context(), "POST", "/v1/workflows/d1/cancel", nil, nil); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the ISO to be withdrawn", waitTimeout, func() bool {
		resp, err := http.Get(image)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusNotFound
	})
	if files, _ := os.ReadDir(isoDir); len(files) != 0 {
		t.Errorf("%d files left in %s after the order", len(files), isoDir)
	}
}

// runJobs runs n's BMC job runner, with media, until the test ends.
func runJobs(t *testing.T, n *apptest.Node, media *mediaServer, log *slog.Logger) {
	t.Helper()
	r, err := newJobRunner(config.Default(), n.Site, n.Key, media, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// get fetches u and wants status.
func get(t *testing.T, u string, status int) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET a media path: %s, want %d", resp.Status, status)
	}
	return string(b)
}

// checkNotShown fails if the secret name of a media URL is in the logs,
// the events or the jobs.
func checkNotShown(t *testing.T, c *client.Client, logs *apptest.SyncBuffer, name string) {
	t.Helper()
	if strings.Contains(logs.String(), name) {
		t.Error("the media URL is in the log")
	}
	evs, _, err := c.Events(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if strings.Contains(e.Message, name) || strings.Contains(strings.Join(mapValues(e.Fields), " "), name) {
			t.Errorf("event %s holds the media URL", e.Kind)
		}
	}
	var jobs []store.Job
	if err := c.List(t.Context(), "jobs", &jobs); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if strings.Contains(j.Error+j.Warning, name) {
			t.Errorf("job %s holds the media URL", j.ID)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
