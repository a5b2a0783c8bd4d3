package provision

import (
	"fmt"
	"testing"
	"time"
)

// TestSubnetLimiterBounded: the limiter keeps at most maxLimiters
// subnets. Past it, subnets whose bucket has refilled are forgotten; if
// none has, new subnets share one bucket, so that a flood from many
// subnets is still limited.
func TestSubnetLimiterBounded(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	l := newSubnetLimiter(2, time.Minute)
	for i := range maxLimiters {
		if !l.allow(fmt.Sprintf("subnet s%d", i), t0) {
			t.Fatalf("subnet %d refused its first machine", i)
		}
	}
	// Every bucket is in use: the next subnets share "other".
	if !l.allow("subnet new1", t0) || !l.allow("subnet new2", t0) || l.allow("subnet new3", t0) {
		t.Error("new subnets past the bound do not share one bucket of 2")
	}
	if len(l.buckets) != maxLimiters+1 {
		t.Errorf("%d buckets, want %d and other", len(l.buckets), maxLimiters)
	}
	// Once the buckets have refilled, they are forgotten for new ones.
	if !l.allow("subnet new4", t0.Add(time.Minute)) {
		t.Error("a new subnet refused after the buckets refilled")
	}
	if len(l.buckets) > 2 {
		t.Errorf("%d buckets after the idle ones were forgotten, want at most 2", len(l.buckets))
	}
}
