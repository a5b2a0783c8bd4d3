package store

import (
	"fmt"
	"testing"

	"github.com/outposthq/outpost/central/internal/fleet"
)

// BenchmarkFleetMachines times a search of 100,000 machines of 1,000
// sites in the index.
func BenchmarkFleetMachines(b *testing.B) {
	x := newFleetIndex(1)
	for s := range 1000 {
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
	f := d.Fleet()
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
