package sim_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/app"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The appliance's ports on sim.ServerAddr.
const (
	apiPort  = "7000"
	bootPort = 8080
)

// TestProvision runs simulated machines against a real appliance (app.Run
// in a child process, see TestMain) across a sim.Net: three machines with a
// workflow walk DHCP through the relay, TFTP, the iPXE script, the
// installer's kernel and initrd and the agent API to a succeeded
// workflow; a fourth, known but without a workflow, gets an address but
// a script that is not the installer's, and fails in PhaseBoot. It needs
// root (namespaces) and fails without it when CI is set.
func TestProvision(t *testing.T) {
	n := sim.NewNet(t)
	art := newArtifacts(t)
	api := startAppliance(t, n, art.Dir)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	machines := sim.Machines(4)
	objs := []store.Object{
		&store.Subnet{Name: "sim", CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}, LeaseSeconds: 3600},
		art.Installer("installer"), art.OSImage("os"), labsite.InstallTemplate(),
	}
	for i, m := range machines {
		objs = append(objs, labsite.Machine(m.ID, m.MAC.String()))
		if i < 3 {
			objs = append(objs, labsite.Workflow("wf-"+m.ID, m.ID, "os", m.ID))
		}
	}
	for _, o := range objs {
		if err := api.Put(ctx, o.Kind()+"s", o.Key(), o, nil); err != nil {
			t.Fatalf("put %s %s: %v", o.Kind(), o.Key(), err)
		}
	}

	relay, err := sim.NewRelay(n.Client, netip.MustParseAddr(sim.ClientAddr), netip.MustParseAddr(sim.ServerAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	env := &sim.Env{Netns: n.Client, Relay: relay, Server: netip.MustParseAddr(sim.ServerAddr), BootPort: bootPort, Artifacts: art}
	out := env.Storm(ctx, machines, len(machines))
	out.CheckAddresses()

	for _, r := range out.Results[:3] {
		if r.Err != nil {
			t.Errorf("%s failed in phase %s: %v", r.ID, r.Phase, r.Err)
			continue
		}
		for ph := range sim.PhaseDone {
			if r.Phases[ph] <= 0 {
				t.Errorf("%s: phase %s took %v", r.ID, ph, r.Phases[ph])
			}
		}
	}
	if r := out.Results[3]; r.Err == nil || r.Phase != sim.PhaseBoot || !strings.Contains(r.Err.Error(), "not an install script") {
		t.Errorf("%s (no workflow): phase %s, error %v; want phase boot, not an install script", r.ID, r.Phase, r.Err)
	}
	if got := env.Progress(); got != (sim.Progress{Done: 4, Failed: 1}) {
		t.Errorf("progress after the storm %+v, want 4 done, 1 failed, none in a phase", got)
	}
	checkSite(t, api, out)
}

// checkSite compares the appliance's records with what the machines that
// succeeded saw: each is provisioned and has the lease its ACK gave.
func checkSite(t *testing.T, api *client.Client, out *sim.Outcome) {
	t.Helper()
	var machines []store.Machine
	var leases []store.Lease
	if err := api.List(t.Context(), "machines", &machines); err != nil {
		t.Fatal(err)
	}
	if err := api.List(t.Context(), "leases", &leases); err != nil {
		t.Fatal(err)
	}
	type view struct {
		Addr  string
		State store.MachineState
	}
	got, want := map[string]view{}, map[string]view{}
	for _, m := range machines {
		got[m.ID] = view{State: m.State}
	}
	for _, l := range leases {
		v := got[l.MachineID]
		v.Addr = l.IP
		got[l.MachineID] = v
	}
	for _, r := range out.Results {
		want[r.ID] = got[r.ID] // a machine that failed knows nothing of its records
		if r.Err == nil {
			want[r.ID] = view{Addr: r.Addr, State: store.StateProvisioned}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the appliance's machines and leases (-what the machines saw +the records):\n%s", diff)
	}
}

// newArtifacts makes the artifacts of sim.NewArtifacts from stand-ins
// for `make images`' files: random bytes, a kernel larger than the range
// a machine fetches and an initrd smaller.
func newArtifacts(t *testing.T) *sim.Artifacts {
	t.Helper()
	src := t.TempDir()
	for name, size := range map[string]int{"undionly.kpxe": 70 << 10, "vmlinuz": 100 << 10, "installer.initrd": 10 << 10} {
		if err := os.WriteFile(filepath.Join(src, name), randomBytes(size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	art, err := sim.NewArtifacts(src, filepath.Join(t.TempDir(), "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	return art
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// applianceEnv set in its environment makes the test binary the
// appliance of TestProvision rather than run tests (see TestMain).
const applianceEnv = "OUTPOST_SIM_APPLIANCE"

// TestMain is also TestProvision's appliance. Started again with
// applianceEnv set, inside the test's server namespace, the test binary
// runs app.Run with its arguments, as applianced does: all of the
// process is in the namespace, so every socket the appliance makes is
// there, the TFTP server's one socket per transfer too (an in-process
// appliance of the test's own would make those outside).
func TestMain(m *testing.M) {
	if os.Getenv(applianceEnv) != "" {
		os.Exit(runAppliance(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runAppliance runs app.Run until SIGTERM, logging to stderr; the
// operator's lines (the admin token) go to stdout.
func runAppliance(args []string) int {
	cfg, err := config.Load(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startAppliance runs a fresh single-node appliance in n.Server (see
// TestMain): DHCP on sim.ServerIface, TFTP, boot HTTP and the API on
// sim.ServerAddr, Raft on the namespace's loopback. It returns an admin
// client of the API once the first admin token is out (the node then
// leads). The appliance is killed when the test ends.
func startAppliance(t *testing.T, n *sim.Net, artifacts string) *client.Client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	p := lab.StartProcess(t, lab.ProcessConfig{Name: "appliance", Netns: n.Server, Env: []string{applianceEnv + "=1"}, Args: []string{
		exe, "-id", "sim", "-data-dir", data, "-api-addr", sim.ServerAddr + ":" + apiPort, "-raft-addr", "127.0.0.1:7001",
		"-dhcp-interface", sim.ServerIface, "-tftp-addr", sim.ServerAddr + ":69",
		"-boot-addr", sim.ServerAddr + ":" + strconv.Itoa(bootPort), "-artifact-dir", artifacts}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`^admin token`)); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := client.PinnedTransport(client.Pin{CAFile: filepath.Join(data, "api-ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	tr.DialContext = n.Server.DialContext
	return client.NewWithHTTP("https://"+sim.ServerAddr+":"+apiPort, strings.TrimSpace(string(token)), &http.Client{Timeout: 30 * time.Second, Transport: tr})
}
