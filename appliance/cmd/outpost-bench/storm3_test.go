package main

import (
	"testing"
	"time"
)

// The failover's cost is the longest time after the kill in which no
// machine finished, counted from the kill; before it, between two
// machines' ends.
func TestStormGaps(t *testing.T) {
	s := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	tests := map[string]struct {
		finished      []time.Duration
		killedAt      time.Duration
		before, after time.Duration
	}{
		"gap after the kill": {finished: []time.Duration{s(1), s(2), s(3), s(9), s(10)}, killedAt: s(3.5),
			before: s(1), after: s(5.5)},
		"first end after the kill": {finished: []time.Duration{s(1), s(5), s(6)}, killedAt: s(2),
			before: 0, after: s(3)},
		"longest before": {finished: []time.Duration{s(1), s(8), s(9), s(10)}, killedAt: s(8.5),
			before: s(7), after: s(1)},
		"none after": {finished: []time.Duration{s(1), s(2)}, killedAt: s(3), before: s(1), after: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k := &leaderKiller{finished: tc.finished, killedAt: tc.killedAt}
			before, after := k.gaps()
			if before != tc.before || after != tc.after {
				t.Errorf("gaps() = %v, %v; want %v, %v", before, after, tc.before, tc.after)
			}
		})
	}
}
