package soak

import (
	"testing"
	"time"
)

// A schedule holds exactly one Upgrade, whatever its duration and
// faults per kind, and none of the exclusive faults (kills, the WAN)
// overlaps it; without the kind, there is none.
func TestScheduleUpgrade(t *testing.T) {
	machines := []string{"m1", "m2"}
	kinds := []Kind{Upgrade, SiteKill, CentralKill, WANPartition, WANFlap, BMCDead}
	for _, c := range []struct {
		d       time.Duration
		perKind int
	}{{10 * time.Minute, 0}, {time.Hour, 0}, {24 * time.Hour, 0}, {time.Hour, 3}} {
		for seed := range uint64(20) {
			s, err := NewSchedule(seed, c.d, machines, nil, kinds, c.perKind)
			if err != nil {
				t.Fatal(err)
			}
			var up []Fault
			for _, f := range s.Faults {
				if f.Kind == Upgrade {
					up = append(up, f)
				}
			}
			if len(up) != 1 {
				t.Fatalf("%v, %d per kind, seed %d: %d upgrades, want 1", c.d, c.perKind, seed, len(up))
			}
			if up[0].Start < time.Duration(float64(c.d)*quiet) || up[0].End <= up[0].Start || up[0].Target != "" {
				t.Errorf("%v seed %d: upgrade %v, want a band within the schedule, after its quiet start", c.d, seed, up[0])
			}
			for _, f := range s.Faults {
				if f.Kind != Upgrade && f.Kind.exclusive() && overlaps([]Fault{up[0]}, f) {
					t.Errorf("%v seed %d: %v overlaps the upgrade %v", c.d, seed, f, up[0])
				}
			}
		}
	}
	s, err := NewSchedule(1, time.Hour, machines, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Faults {
		if f.Kind == Upgrade {
			t.Errorf("the default kinds scheduled an upgrade: %v", f)
		}
	}
}
