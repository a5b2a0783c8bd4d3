package metadata

import (
	"net/http"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/clock"
)

// TestClockStepForward: after the wall clock steps a day forward (NTP
// correcting a slow clock), a machine whose lease DHCP still honours is
// still answered, and a token is good for the TTL it was given, as
// counted by a clock that does not step; then both end on time.
func TestClockStepForward(t *testing.T) {
	parallel(t)
	var mono time.Duration // the clock that never steps
	f := newFixtureWith(t, func(f *fixture, cfg *Config) {
		cfg.Steps = clock.NewStepGuard(cfg.Now, func() time.Duration { return mono }, cfg.Log)
	})
	tok := f.getToken(t, addr1, 600)
	withToken := func() int {
		return f.do(t, http.MethodGet, addr1, "/latest/meta-data/instance-id", map[string]string{tokenHeader: tok}).StatusCode
	}
	tick := func(d time.Duration) { f.now, mono = f.now.Add(d), mono+d }

	tick(time.Minute)
	f.now = f.now.Add(24 * time.Hour) // the step
	if code, _ := f.get(t, addr1, "/latest/meta-data/instance-id"); code != http.StatusOK {
		t.Errorf("a minute into a lease with an hour left, after a step of a day: %d, want 200", code)
	}
	if code := withToken(); code != http.StatusOK {
		t.Errorf("a token of 600 s, 60 s old, after a step of a day: %d, want 200", code)
	}
	// m4's lease had ended before the step: it stays ended.
	if code, _ := f.get(t, addrExpired, "/latest/meta-data/instance-id"); code != http.StatusNotFound {
		t.Errorf("a lease that ended before the step: %d, want 404", code)
	}

	tick(540 * time.Second) // the token's 600 s are up
	if code := withToken(); code != http.StatusUnauthorized {
		t.Errorf("the token at the end of its TTL: %d, want 401", code)
	}
	tick(50 * time.Minute) // the lease's hour is up
	if code, _ := f.get(t, addr1, "/latest/meta-data/instance-id"); code != http.StatusNotFound {
		t.Errorf("the lease at its end: %d, want 404", code)
	}
}
