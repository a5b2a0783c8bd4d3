package sim_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// TestParseInstallScript reads the scripts httpboot renders (its golden
// files) and a few that are not whole.
func TestParseInstallScript(t *testing.T) {
	const token = "wHRzCPsaHcJwJ_3iHUT847RFHXW7hvypKMJLujemscNs.wf-m1"
	golden := func(name string) string {
		raw, err := os.ReadFile(filepath.Join("..", "..", "httpboot", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	tests := map[string]struct {
		script string
		want   sim.InstallScript
		err    string
	}{
		"install": {script: golden("install.ipxe"), want: sim.InstallScript{
			Kernel: "http://198.18.0.1:8080/artifacts/installer/vmlinuz", Initrd: "http://198.18.0.1:8080/artifacts/installer/initrd.gz",
			URL: "http://198.18.0.1:8080", Token: token, Machine: "m1",
		}},
		"installer by URL": {script: golden("install-url.ipxe"), want: sim.InstallScript{
			Kernel: "http://mirror.example/hook/vmlinuz-x86_64", Initrd: "https://mirror.example/hook/initramfs-x86_64?v=2",
			URL: "http://198.18.0.1:8080", Token: token, Machine: "m1",
		}},
		"discovery, no machine": {script: golden("unknown-discover.ipxe"), want: sim.InstallScript{
			Kernel: "http://198.18.0.1:8080/artifacts/installer/vmlinuz", Initrd: "http://198.18.0.1:8080/artifacts/installer/initrd.gz",
			URL: "http://198.18.0.1:8080", Token: "d<signature>.525400abcdef.c61200c8.1772362800.<nonce>",
		}},
		"local disk": {script: golden("provisioned-bios.ipxe"),
			err: `not an install script: "Outpost: provisioned: machine m1, MAC 52:54:00:12:34:56, booting from the local disk"`},
		"hold": {script: golden("hold.ipxe"),
			err: `not an install script: "Outpost: hold: machine m1 is ready, MAC 52:54:00:12:34:56, nothing to boot"`},
		"no token": {script: "#!ipxe\nkernel http://a/k outpost.url=http://a\ninitrd http://a/i\nboot\n",
			want: sim.InstallScript{Kernel: "http://a/k", Initrd: "http://a/i", URL: "http://a"}, err: `not an install script: ""`},
		"empty": {err: `not an install script: ""`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := sim.ParseInstallScript(tc.script)
			if msg := fmt.Sprint(err); tc.err != "" && msg != tc.err || tc.err == "" && err != nil {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestOutcome checks what a benchmark reads from a storm's outcome: the
// machines ok, latencies by nearest rank, and addresses given twice.
func TestOutcome(t *testing.T) {
	s := time.Second
	results := []sim.Result{
		{ID: "a", Total: 3 * s, Addr: "198.18.1.1", Phases: phases(1*s, 2*s)},
		{ID: "b", Total: 1 * s, Addr: "198.18.1.2", Phases: phases(1*s, 0)},
		{ID: "c", Total: 4 * s, Addr: "198.18.1.1", Phases: phases(2*s, 2*s)},
		{ID: "d", Total: 2 * s, Err: errors.New("no answer"), Phase: sim.PhaseTFTP, Phases: phases(3*s, 0)},
	}
	out := &sim.Outcome{Results: results}
	if got := out.OK(); got != 3 {
		t.Errorf("OK() = %d, want 3", got)
	}
	for name, c := range map[string]struct{ got, want sim.Latency }{
		"total": {out.Latency(), sim.Latency{N: 4, P50: 2 * s, P99: 4 * s, Max: 4 * s}},
		"dhcp":  {out.PhaseLatency(sim.PhaseDHCP), sim.Latency{N: 4, P50: 1 * s, P99: 3 * s, Max: 3 * s}},
		"tftp":  {out.PhaseLatency(sim.PhaseTFTP), sim.Latency{N: 2, P50: 2 * s, P99: 2 * s, Max: 2 * s}},
		"boot":  {out.PhaseLatency(sim.PhaseBoot), sim.Latency{}},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s latency (-want +got):\n%s", name, diff)
		}
	}

	out.CheckAddresses()
	type failure struct {
		Phase sim.Phase
		Err   string
	}
	got := map[string]failure{}
	for _, r := range out.Results {
		if r.Err != nil {
			got[r.ID] = failure{r.Phase, r.Err.Error()}
		}
	}
	twice := failure{sim.PhaseDHCP, "address 198.18.1.1 was given to both a and c"}
	want := map[string]failure{"a": twice, "c": twice, "d": {sim.PhaseTFTP, "no answer"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failures after CheckAddresses (-want +got):\n%s", diff)
	}
}

// phases is a Result's Phases with DHCP and TFTP set.
func phases(dhcp, tftp time.Duration) (p [sim.PhaseDone]time.Duration) {
	p[sim.PhaseDHCP], p[sim.PhaseTFTP] = dhcp, tftp
	return p
}

func TestMachines(t *testing.T) {
	ms := sim.Machines(258)
	got := []string{ms[0].ID, ms[0].MAC.String(), ms[257].ID, ms[257].MAC.String()}
	want := []string{"storm-0000", "02:00:00:00:00:00", "storm-0257", "02:00:00:00:01:01"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func ExamplePhase() {
	for ph := range sim.PhaseDone + 1 {
		fmt.Print(ph, " ")
	}
	// Output: dhcp tftp boot agent done
}
