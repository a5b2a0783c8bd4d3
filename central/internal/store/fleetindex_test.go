package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/machinequery"
)

// bigFleet is a store whose index holds sites*100 machines (no file).
func bigFleet(sites int) *DB {
	x := newFleetIndex(1)
	for s := range sites {
		site := fmt.Sprintf("sim%04d", s)
		x.labels[site] = map[string]string{"region": []string{"eu", "us", "ap"}[s%3]}
		for k := range 100 {
			x.set(&fleet.Machine{Site: site, ID: fmt.Sprintf("m%03d", k), Hostname: fmt.Sprintf("web-%s-%02d", site, k),
				MACs: []string{fmt.Sprintf("02:00:%02x:%02x:%02x:01", s>>8, s&0xff, k)}, Tags: []string{"rack-1"},
				State: []string{"ready", "failed", "provisioned"}[k%3]})
		}
	}
	d := &DB{}
	d.index.Store(x)
	return d
}

// TestFleetSearchInParts: a search of a fleet large enough to be split
// among the CPUs answers what one pass over it answers, page by page.
func TestFleetSearchInParts(t *testing.T) {
	d := bigFleet(500)
	x := d.index.Load()
	for _, q := range []string{"state:failed", "label:region=eu state:provisioned", "hostname:*-07", "site:sim02*"} {
		query, err := machinequery.ParseFleet(q)
		if err != nil {
			t.Fatal(err)
		}
		x.view(func(sorted []indexed) {
			for _, from := range []int{0, 1, 20000, 49990} {
				wantTotal, wantFound := searchPart(query, sorted, 0, len(sorted), from, 101)
				total, found := search(query, sorted, from, 101)
				if total != wantTotal || !slices.Equal(found, wantFound) {
					t.Errorf("%q from %d: %d %v, want %d %v", q, from, total, found, wantTotal, wantFound)
				}
			}
		})
	}
}

// BenchmarkFleetMachines times a search of 100,000 machines of 1,000
// sites in the index.
func BenchmarkFleetMachines(b *testing.B) {
	f := bigFleet(1000).Fleet()
	for _, q := range []string{"", "state:failed", "label:region=eu state:provisioned", "site:sim00* tag:gpu", "hostname:*-07* -state:ready", "web"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				if _, err := f.Machines(q, 100, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
