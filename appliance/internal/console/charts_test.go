package console

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestBuildCharts: provisioning times per image and hardware class
// (nearest-rank percentiles of the successful ones, and their
// histogram), and success ratios per day, image and class.
func TestBuildCharts(t *testing.T) {
	var ps []provision
	for i := 1; i <= 10; i++ { // ubuntu on dell: 1 to 10 minutes
		ps = append(ps, provision{Image: "ubuntu", Class: "Dell R650", Day: "2026-12-06", Took: time.Duration(i) * time.Minute, OK: true})
	}
	ps = append(ps,
		provision{Image: "ubuntu", Class: "unknown", Day: "2026-12-07", Took: 90 * time.Minute, OK: true},
		provision{Image: "debian", Class: "Dell R650", Day: "2026-12-07", Took: 3 * time.Minute, OK: false},
		provision{Image: "debian", Class: "Dell R650", Day: "2026-12-07", Took: 4 * time.Minute, OK: true},
	)
	d := buildCharts(ps)
	type row struct {
		Key           string
		Count         int
		P50, P90, P99 time.Duration
		Hist          []int
	}
	var got []row
	for _, r := range d.ByImage {
		x := row{Key: r.Key, Count: r.Count, P50: r.P50, P90: r.P90, P99: r.P99}
		for _, b := range r.Hist {
			x.Hist = append(x.Hist, b.Count)
		}
		got = append(got, x)
	}
	want := []row{
		{Key: "debian", Count: 1, P50: 4 * time.Minute, P90: 4 * time.Minute, P99: 4 * time.Minute, Hist: []int{0, 0, 1, 0, 0, 0, 0, 0}},
		// 11 successes: 1..10 minutes and 90; nearest rank 6, 10, 11.
		{Key: "ubuntu", Count: 11, P50: 6 * time.Minute, P90: 10 * time.Minute, P99: 90 * time.Minute, Hist: []int{1, 1, 3, 5, 0, 0, 0, 1}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("times by image (-want +got):\n%s", diff)
	}
	if d.ByClass[0].Key != "Dell R650" || d.ByClass[0].Count != 11 || d.ByClass[1].Key != "unknown" || d.ByClass[1].P50 != 90*time.Minute {
		t.Errorf("times by class: %+v", d.ByClass)
	}
	if d.ByImage[1].Hist[3].Height != "100" || d.ByImage[1].Hist[0].Height != "20" {
		t.Errorf("histogram heights %+v, want relative to the fullest bin", d.ByImage[1].Hist)
	}
	ratios := func(rows []ratioRow) (out []string) {
		for _, r := range rows {
			out = append(out, r.Key+" "+r.Ratio)
		}
		return out
	}
	for name, tc := range map[string]struct {
		rows []ratioRow
		want []string
	}{
		"days, newest first": {d.Days, []string{"2026-12-07 66.7", "2026-12-06 100.0"}},
		"images":             {d.Images, []string{"debian 50.0", "ubuntu 100.0"}},
		"classes":            {d.Classes, []string{"Dell R650 91.7", "unknown 100.0"}},
	} {
		if diff := cmp.Diff(tc.want, ratios(tc.rows)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if d.Provisions != 13 || d.Unknown != 1 {
		t.Errorf("%d provisions, %d unknown; want 13 and 1", d.Provisions, d.Unknown)
	}
}
