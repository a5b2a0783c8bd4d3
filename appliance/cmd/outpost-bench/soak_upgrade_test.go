package main

import (
	"slices"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/soak"
)

// A rolling upgrade replaces a cluster's leader while it is old, else
// its first old node, each node once: with n1 leading and leadership
// moving as each leader stops, every node is upgraded in turn.
func TestNextUpgrade(t *testing.T) {
	for _, c := range []struct {
		old    []string
		leader string
		want   string
	}{
		{[]string{"n1", "n2", "n3"}, "n2", "n2"},
		{[]string{"n1", "n3"}, "n2", "n1"}, // the leader is new
		{[]string{"n1", "n3"}, "", "n1"},   // no leader known
		{[]string{"n3"}, "n3", "n3"},
		{nil, "n1", ""},
	} {
		if got := nextUpgrade(c.old, c.leader); got != c.want {
			t.Errorf("nextUpgrade(%v, %q) = %q, want %q", c.old, c.leader, got, c.want)
		}
	}
	// Leadership passes to the next node each time its leader stops.
	old, leader, done := []string{"c1", "c2", "c3"}, "c2", []string(nil)
	for len(old) > 0 {
		id := nextUpgrade(old, leader)
		done = append(done, id)
		old = slices.DeleteFunc(old, func(o string) bool { return o == id })
		if len(old) > 0 {
			leader = old[len(old)-1]
		}
	}
	if want := []string{"c2", "c3", "c1"}; !slices.Equal(done, want) {
		t.Errorf("upgraded %v, want %v", done, want)
	}
}

// The schedule's kinds: an upgrade first when there is a release to
// upgrade from, and none without one, whatever the list says.
func TestSoakScheduleKinds(t *testing.T) {
	for _, c := range []struct {
		list, from string
		want       []soak.Kind
	}{
		{"", "", soak.Kinds},
		{"", "75c47a5", append([]soak.Kind{soak.Upgrade}, soak.Kinds...)},
		{"site.kill, wan.flap", "v1", []soak.Kind{soak.Upgrade, soak.SiteKill, soak.WANFlap}},
		{"site.kill,upgrade", "v1", []soak.Kind{soak.Upgrade, soak.SiteKill}},
		{"site.kill", "", []soak.Kind{soak.SiteKill}},
	} {
		if got := soakScheduleKinds(c.list, c.from); !slices.Equal(got, c.want) {
			t.Errorf("soakScheduleKinds(%q, %q) = %v, want %v", c.list, c.from, got, c.want)
		}
	}
}
