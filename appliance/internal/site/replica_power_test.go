package site

import (
	"testing"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestSetPowerStale: a power reading taken before the machine last
// changed (a job powered it off meanwhile) changes nothing; a current one
// is recorded.
func TestSetPowerStale(t *testing.T) {
	e := newFSMEnv(t)
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: fsmT0})
	e.applyOK(2, SetPower, Power{Machine: "m1", Power: "off", Expect: 1, Time: fsmT0}) // read at version 1: current
	e.applyOK(3, SetPower, Power{Machine: "m1", Power: "on", Expect: 1, Time: fsmT0})  // read at version 1: stale now
	e.view(func(tx *store.Tx) error {
		m, err := store.Get[store.Machine](tx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Power != "off" || m.Version != 2 {
			t.Errorf("machine power %q at version %d, want off at 2: the stale reading must change nothing", m.Power, m.Version)
		}
		return nil
	})
}
