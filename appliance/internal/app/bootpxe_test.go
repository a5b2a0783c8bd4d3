package app

import (
	"log/slog"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/testwait"
)

// TestBootPXEThroughIPMISim: an operator's POST /v1/machines/{id}/boot-pxe
// becomes a BMC job that the leader's runner, over the real bmc pool,
// runs against ipmi_sim: the job succeeds with no warning, the simulator
// reports the next boot device as PXE (ipmitool chassis bootparam get
// 5), and the job's event names the operator.
func TestBootPXEThroughIPMISim(t *testing.T) {
	sim := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "bootpxe", BootDevice: true})
	n := apptest.Start(t)
	runJobs(t, n, nil, slog.New(slog.NewTextHandler(t.Output(), nil)))

	admin := client.New(n.URL, n.Token)
	m := apptest.Machine("m1", 1)
	m.BMC = &store.BMC{Address: sim.Addr, Username: sim.Username, Password: sim.Password}
	if err := admin.Put(t.Context(), "machines", "m1", m, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(t.Context(), httpapi.TokenRequest{Name: "pat", Role: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sim.BootDevice(t.Context()); err != nil || got != "No override" {
		t.Fatalf("boot device before: %q, %v", got, err)
	}
	j, err := client.New(n.URL, tok.Token).BootPXE(t.Context(), "m1", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.JobPending || j.Action != store.JobBootPXE {
		t.Fatalf("the answer: %+v, want a pending boot_pxe job", j)
	}
	j = waitJob(t, admin, j.ID)
	if j.State != store.JobSucceeded || j.Warning != "" || j.Error != "" {
		t.Errorf("job %+v: want succeeded, with no warning", j)
	}
	if got, err := sim.BootDevice(t.Context()); err != nil || got != "Force PXE" {
		t.Errorf("ipmi_sim's boot device: %q, %v; want Force PXE", got, err)
	}
	evs, _, err := admin.Events(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var by string
	for _, e := range evs {
		if e.Kind == "bmc.job.created" && e.Fields["job"] == j.ID {
			by = e.By
		}
	}
	if by != "pat" {
		t.Errorf("the job was created by %q, want pat", by)
	}
	// An unknown machine: refused, naming it, and no job.
	if _, err := client.New(n.URL, tok.Token).BootPXE(t.Context(), "m9", false, false); err == nil {
		t.Error("boot-pxe of an unknown machine was accepted")
	}
}

// waitJob waits until job id has ended and returns it.
func waitJob(t *testing.T, c *client.Client, id string) *store.Job {
	t.Helper()
	var j store.Job
	testwait.For(t, "job "+id+" to end", waitTimeout, func() bool {
		return c.Get(t.Context(), "jobs", id, &j) == nil && j.Done()
	})
	return &j
}
