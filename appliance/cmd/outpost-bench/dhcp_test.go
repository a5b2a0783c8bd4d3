package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// capacityProbe is a server that completes at most capacity exchanges per
// second, and the rates it was offered.
type capacityProbe struct {
	capacity float64
	offered  []int
}

func (c *capacityProbe) probe(_ context.Context, rate int) (perfResult, error) {
	c.offered = append(c.offered, rate)
	begun := float64(rate) * dhcpProbe.Seconds()
	done := min(float64(rate), c.capacity) * dhcpProbe.Seconds()
	return perfResult{seconds: dhcpProbe.Seconds(), discovers: int(begun), acks: int(done)}, nil
}

func TestSearchRate(t *testing.T) {
	tests := map[string]struct {
		capacity   float64
		search     rateSearch
		wantProbes []int
		wantPassed int
	}{
		"first, doubling then bisecting": {capacity: 5800, search: firstSearch,
			wantProbes: []int{500, 1000, 2000, 4000, 8000, 6000, 5000, 5500}, wantPassed: 5500},
		"first, halving": {capacity: 300, search: firstSearch,
			wantProbes: []int{500, 250, 375, 312, 281}, wantPassed: 281},
		"from the last run's rate": {capacity: 5800, search: nextSearch(5500),
			wantProbes: []int{5500, 6875, 6187, 5843, 6015}, wantPassed: 5843},
		"nothing passed last time": {capacity: 300, search: nextSearch(0),
			wantProbes: []int{500, 250, 375, 312, 281}, wantPassed: 281},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := &capacityProbe{capacity: tc.capacity}
			best, passed, err := searchRate(t.Context(), tc.search, "fake", srv.probe)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantProbes, srv.offered); diff != "" {
				t.Errorf("rates offered (-want +got):\n%s", diff)
			}
			// The criterion: at most 2.5 % unanswered at the rate passed.
			if passed != tc.wantPassed || float64(passed)*(1-dhcpMaxDrops) > tc.capacity {
				t.Errorf("passed %d/s, want %d/s, within 2.5 %% of the capacity %.0f/s", passed, tc.wantPassed, tc.capacity)
			}
			if want := min(float64(passed), tc.capacity); best != want {
				t.Errorf("best %.0f/s, want what completed at %d/s: %.0f/s", best, passed, want)
			}
		})
	}
}

func TestSearchRateNothingPasses(t *testing.T) {
	srv := &capacityProbe{capacity: 1}
	_, _, err := searchRate(t.Context(), firstSearch, "fake", srv.probe)
	if err == nil || !strings.Contains(err.Error(), "no rate down to 15/s had drops within 2.5 %") {
		t.Fatalf("searchRate = %v, want the lowest rate tried named", err)
	}
}

func TestDoraLine(t *testing.T) {
	tests := map[string]struct {
		nodes   string
		figures map[string][]float64
		want    string
	}{
		"one node": {
			figures: map[string][]float64{"outpost": {3000, 2400, 3300}, "kea": {2000, 2000, 2200}, "dnsmasq": {400, 410, 390}},
			want:    "BENCH dhcp.dora outpost=3000/s kea=2000/s dnsmasq=400/s ratio_vs_kea=1.50 ratio_min=1.20 spread_pct=20.0 runs=3",
		},
		"three nodes, no dnsmasq": {
			nodes:   "nodes=3",
			figures: map[string][]float64{"outpost": {2100, 2000, 1900}, "kea": {2000, 2500, 2000}},
			want:    "BENCH dhcp.dora nodes=3 outpost=2000/s kea=2000/s ratio_vs_kea=0.95 ratio_min=0.80 spread_pct=25.0 runs=3",
		},
		"kea never answered": {
			figures: map[string][]float64{"outpost": {100}, "kea": {0}, "dnsmasq": {10}},
			want:    "BENCH dhcp.dora outpost=100/s kea=0/s dnsmasq=10/s ratio_vs_kea=0.00 ratio_min=0.00 spread_pct=0.0 runs=1",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := doraLine(tc.nodes, tc.figures); got != tc.want {
				t.Errorf("doraLine =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestCostPerDORA(t *testing.T) {
	run := func(acks, discovers int, instr uint64) costRun {
		return costRun{res: perfResult{acks: acks, discovers: discovers}, instr: instr}
	}
	tests := map[string]struct {
		small, large costRun
		want         float64
		wantErr      string
	}{
		"every exchange ACKed":  {small: run(20, 20, 9_000_000), large: run(60, 60, 24_000_000), want: 375_000},
		"a few unanswered":      {small: run(20, 20, 9_000_000), large: run(58, 60, 23_250_000), want: 375_000},
		"too many unanswered":   {small: run(20, 20, 9_000_000), large: run(50, 60, 24_000_000), wantErr: "50 of 60 exchanges ACKed"},
		"no more for more":      {small: run(20, 20, 9_000_000), large: run(60, 60, 8_000_000), wantErr: "no more for more"},
		"no more exchanges":     {small: run(20, 20, 9_000_000), large: run(20, 20, 24_000_000), wantErr: "no more for more"},
		"nothing answered ever": {small: run(0, 20, 9_000_000), large: run(0, 60, 24_000_000), wantErr: "0 of 20 exchanges ACKed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := costPerDORA(tc.small, tc.large)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("costPerDORA = %v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("costPerDORA = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// dhcp.cost against a real kea-dhcp4 under callgrind, with fewer
// exchanges: the figure is in the range of Kea's (0.38 M measured by
// hand), not start-up nor perfdhcp's waits.
func TestInstrPerDORAKea(t *testing.T) {
	lab.Require(t, "root", "ip", "perfdhcp", "kea-dhcp4", "valgrind", "callgrind_control")
	tools, err := dhcpTools()
	if err != nil {
		t.Fatal(err)
	}
	bn := sim.NewNet(t)
	load := dhcpLoad{ns: bn.Client, iface: sim.ClientIface, perfdhcp: tools["perfdhcp"]}
	var kea costContender
	for _, c := range costContenders(bn, tools, "") {
		if c.name == "kea" {
			kea = c
		}
	}
	plan := costPlan{rate: 4, small: 4, large: 12, wait: 10 * time.Second, idle: time.Second}
	n, err := instrPerDORA(t.Context(), load, filepath.Join(t.TempDir(), "kea"), kea, plan)
	if err != nil {
		t.Fatal(err)
	}
	if n < 100_000 || n > 2_000_000 {
		t.Errorf("kea-dhcp4: %.0f instructions per DORA, want 0.1 to 2 M", n)
	}
}
