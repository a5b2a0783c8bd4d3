// Package testwait is the tests' one way to wait for something another
// goroutine or process brings about: poll a condition until it holds,
// and fail the test, naming what it waited for, if it does not in time.
// Tests wait on conditions, never on fixed sleeps.
package testwait

import (
	"testing"
	"time"
)

// Poll is how often For checks its condition.
const Poll = 10 * time.Millisecond

// For waits until cond holds, checking every Poll, and fails the test if
// it does not within timeout.
func For(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(Poll)
	}
}

// Closed reports whether ch is closed (or holds a value) now, without
// waiting: for a test that checks a notification has, or has not, been
// given by the time something it waited for is done.
func Closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
