package bmc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testLog logs to the test's output and to buf, which the test can search.
func testLog(t *testing.T, buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &syncWriter{w: buf}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func creds(addr, driver string) Credentials {
	return Credentials{Address: addr, Username: "admin", Password: "hunter2-secret", Driver: driver}
}

// failTimes fails the first n calls with kind, then succeeds.
func failTimes(n int, kind error) func(string) error {
	var mu sync.Mutex
	return func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if n == 0 {
			return nil
		}
		n--
		return failure(kind, "fake failure")
	}
}

// TestPoolRetriesWithBackoff: failed attempts are retried after waits
// that double, jittered to between half and all of each.
func TestPoolRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBMC{fail: failTimes(2, ErrUnreachable)}
		p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI)})
		if err := p.PowerOn(t.Context(), creds("10.0.0.1", IPMI)); err != nil {
			t.Fatal(err)
		}
		at := b.times()
		if len(at) != 3 {
			t.Fatalf("%d calls, want 3: %v", len(at), b.callList())
		}
		for i, want := range []time.Duration{time.Second, 2 * time.Second} {
			if gap := at[i+1].Sub(at[i]); gap < want/2 || gap > want {
				t.Errorf("wait before attempt %d: %v, want between %v and %v", i+2, gap, want/2, want)
			}
		}
	})
}

// TestPoolBackoffCapped: waits stop doubling at MaxBackoff.
func TestPoolBackoffCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBMC{fail: failTimes(100, ErrUnreachable)}
		p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI), Attempts: 6, Backoff: 4 * time.Second, MaxBackoff: 10 * time.Second})
		err := p.PowerOff(t.Context(), creds("10.0.0.1", IPMI))
		var e *Error
		if !errors.As(err, &e) || e.Attempts != 6 || !errors.Is(err, ErrUnreachable) {
			t.Fatalf("err %v, want an *Error of kind ErrUnreachable after 6 attempts", err)
		}
		at := b.times()
		for i, want := range []time.Duration{4, 8, 10, 10, 10} {
			want *= time.Second
			if gap := at[i+1].Sub(at[i]); gap < want/2 || gap > want {
				t.Errorf("wait before attempt %d: %v, want between %v and %v", i+2, gap, want/2, want)
			}
		}
	})
}

// TestPoolGivesUp: the error names the BMC, the operation and what
// failed, and counts the attempts.
func TestPoolGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBMC{fail: failTimes(100, ErrUnreachable)}
		p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI)})
		err := p.PowerOn(t.Context(), creds("10.0.0.1", IPMI))
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("err %v, want ErrUnreachable", err)
		}
		want := "bmc 10.0.0.1: power on: unreachable (3 attempts): ipmi: fake failure"
		if err.Error() != want {
			t.Errorf("error %q\nwant     %q", err, want)
		}
		if n := len(b.callList()); n != 3 {
			t.Errorf("%d calls, want 3", n)
		}
	})
}

// TestPoolNoRetry: a refused login or boot device is final.
func TestPoolNoRetry(t *testing.T) {
	for name, kind := range map[string]error{"auth": ErrAuth, "boot device": ErrBootDeviceRefused} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := &fakeBMC{fail: failTimes(100, kind)}
				p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI)})
				err := p.SetBootPXE(t.Context(), creds("10.0.0.1", IPMI), BootOptions{})
				if !errors.Is(err, kind) {
					t.Fatalf("err %v, want %v", err, kind)
				}
				if n := len(b.callList()); n != 1 {
					t.Errorf("%d calls, want 1", n)
				}
			})
		})
	}
}

// TestPoolTimeout: each attempt is bounded by Timeout; one that runs out
// is ErrTimeout.
func TestPoolTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBMC{hold: time.Hour}
		p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI), Attempts: 2, Backoff: time.Second, MaxBackoff: time.Second})
		start := time.Now()
		_, err := p.PowerState(t.Context(), creds("10.0.0.1", IPMI))
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err %v, want ErrTimeout", err)
		}
		// Two attempts of 30 s and a wait of half a second to a second.
		if took := time.Since(start); took < 60*time.Second+time.Second/2 || took > 61*time.Second {
			t.Errorf("took %v, want 60.5 s to 61 s", took)
		}
		if !strings.Contains(err.Error(), "no answer within 30s") {
			t.Errorf("error %q does not say how long it waited", err)
		}
	})
}

// TestPoolCallerCancels: the caller's cancellation ends the operation, in
// an attempt or between two, with context.Canceled.
func TestPoolCallerCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBMC{hold: time.Hour}
		p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI)})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Second, cancel)
		err := p.PowerOn(ctx, creds("10.0.0.1", IPMI))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	})
}

// TestPoolConcurrencyLimit: no more attempts run at once than
// Concurrency, and that many do.
func TestPoolConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := &concurrency{}
		bmcs := map[string]*fakeBMC{}
		for i := range 20 {
			bmcs[fmt.Sprintf("10.0.0.%d:623", i)] = &fakeBMC{hold: time.Second, shared: shared}
		}
		p := New(Config{Drivers: fakeDrivers(bmcs, IPMI), Concurrency: 4})
		start := time.Now()
		var wg sync.WaitGroup
		for addr := range bmcs {
			wg.Go(func() {
				if err := p.PowerOn(t.Context(), creds(addr, IPMI)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := shared.peak(); got != 4 {
			t.Errorf("at most %d calls at once, want 4", got)
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("20 one-second calls, 4 at a time, took %v, want 5s", took)
		}
	})
}

// TestPoolOneAtATimePerBMC: operations on one BMC run one after another;
// another BMC's run alongside.
func TestPoolOneAtATimePerBMC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := &concurrency{}
		a := &fakeBMC{hold: time.Second, shared: shared}
		b := &fakeBMC{hold: time.Second, shared: shared}
		p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": a, "10.0.0.2:623": b}, IPMI)})
		var wg sync.WaitGroup
		for i := range 10 {
			// Both spellings of a's address are one BMC.
			addrA := "10.0.0.1"
			if i%2 == 1 {
				addrA = "10.0.0.1:623"
			}
			wg.Go(func() { p.PowerCycle(t.Context(), creds(addrA, IPMI)) })
			wg.Go(func() { p.PowerOff(t.Context(), creds("10.0.0.2", IPMI)) })
		}
		wg.Wait()
		if a.maxSeen != 1 || b.maxSeen != 1 {
			t.Errorf("calls at once on one BMC: %d and %d, want 1", a.maxSeen, b.maxSeen)
		}
		if got := shared.peak(); got != 2 {
			t.Errorf("calls at once across two BMCs: %d, want 2", got)
		}
		if len(p.locks) != 0 {
			t.Errorf("%d BMC locks left after all operations ended", len(p.locks))
		}
	})
}

// TestPoolDeadBMCHoldsOneSlot: a BMC that never answers delays no other
// BMC while it holds one slot of two, and with a single slot it gives the
// slot back between attempts.
func TestPoolDeadBMCHoldsOneSlot(t *testing.T) {
	for _, slots := range []int{2, 1} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dead := &fakeBMC{hold: time.Hour}
				live := &fakeBMC{}
				p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": dead, "10.0.0.2:623": live}, IPMI), Concurrency: slots})
				start := time.Now()
				deadDone := make(chan error, 1)
				go func() { deadDone <- p.PowerOn(t.Context(), creds("10.0.0.1", IPMI)) }()
				synctest.Wait() // the dead BMC's first attempt holds a slot
				for range 5 {
					if err := p.PowerOn(t.Context(), creds("10.0.0.2", IPMI)); err != nil {
						t.Fatal(err)
					}
				}
				liveTook := time.Since(start)
				select {
				case err := <-deadDone:
					t.Fatalf("the dead BMC's operation ended (%v) before the live one's", err)
				default:
				}
				if slots > 1 && liveTook != 0 {
					t.Errorf("with a free slot the live BMC waited %v", liveTook)
				}
				if err := <-deadDone; !errors.Is(err, ErrTimeout) {
					t.Errorf("dead BMC: %v, want ErrTimeout", err)
				}
			})
		})
	}
}

// TestPoolDriverOrder: the drivers tried, in order, for the credentials'
// driver or the configured order, falling back on failure.
func TestPoolDriverOrder(t *testing.T) {
	refuse := func(driver string) func(string) error {
		return func(d string) error {
			if d == driver {
				return failure(ErrUnreachable, "%s refused", d)
			}
			return nil
		}
	}
	tests := map[string]struct {
		driver    string
		order     []string
		fail      func(string) error
		wantCalls []string
		wantErr   error
		wantText  string
	}{
		"default order, Redfish answers": {
			wantCalls: []string{"redfish on"},
		},
		"default order, falls back to IPMI": {
			fail:      refuse(Redfish),
			wantCalls: []string{"redfish on", "ipmi on"},
		},
		"pinned ipmi": {
			driver:    IPMI,
			wantCalls: []string{"ipmi on"},
		},
		"pinned redfish tries nothing else": {
			driver:    Redfish,
			fail:      refuse(Redfish),
			wantCalls: []string{"redfish on", "redfish on", "redfish on"},
			wantErr:   ErrUnreachable,
		},
		"configured order": {
			order:     []string{IPMI, Redfish},
			fail:      refuse(IPMI),
			wantCalls: []string{"ipmi on", "redfish on"},
		},
		"both fail, the most telling kind wins": {
			fail: func(d string) error {
				if d == Redfish {
					return failure(ErrUnreachable, "connection refused")
				}
				return failure(ErrAuth, "session refused")
			},
			wantCalls: []string{"redfish on", "ipmi on"},
			wantErr:   ErrAuth,
			wantText:  "bmc 10.0.0.1: power on: authentication refused (1 attempt): redfish: connection refused; ipmi: session refused",
		},
		"unknown driver": {
			driver:   "amt",
			wantErr:  nil,
			wantText: `bmc 10.0.0.1: power on: failed: unknown driver "amt"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := &fakeBMC{fail: tc.fail}
				p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI, Redfish), Order: tc.order})
				err := p.PowerOn(t.Context(), creds("10.0.0.1", tc.driver))
				if diff := cmp.Diff(tc.wantCalls, b.callList()); diff != "" {
					t.Errorf("calls (-want +got):\n%s", diff)
				}
				switch {
				case tc.wantErr == nil && tc.wantText == "" && err != nil:
					t.Errorf("err %v", err)
				case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
					t.Errorf("err %v, want %v", err, tc.wantErr)
				case tc.wantText != "" && (err == nil || err.Error() != tc.wantText):
					t.Errorf("err %v\nwant %s", err, tc.wantText)
				}
			})
		})
	}
}

// TestPowerCycle: a machine that is on is cycled; one that is off is
// powered on.
func TestPowerCycle(t *testing.T) {
	for _, tc := range []struct {
		power PowerState
		want  []string
	}{
		{On, []string{"ipmi status", "ipmi cycle"}},
		{Off, []string{"ipmi status", "ipmi on"}},
	} {
		t.Run(string(tc.power), func(t *testing.T) {
			b := &fakeBMC{power: tc.power}
			p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI)})
			if err := p.PowerCycle(t.Context(), creds("10.0.0.1", IPMI)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.callList()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if st, err := p.PowerState(t.Context(), creds("10.0.0.1", IPMI)); err != nil || st != On {
				t.Errorf("power state after cycle: %v, %v; want on", st, err)
			}
		})
	}
}

// TestPoolHidesPassword: a driver error that holds the password (as a
// careless library's might) comes out, and is logged, without it.
func TestPoolHidesPassword(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := creds("10.0.0.1", IPMI)
		b := &fakeBMC{fail: func(string) error {
			return fmt.Errorf("login %s:%s failed", c.Username, c.Password)
		}}
		var logs bytes.Buffer
		p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, IPMI), Log: testLog(t, &logs)})
		err := p.PowerOn(t.Context(), c)
		if err == nil {
			t.Fatal("no error")
		}
		if strings.Contains(err.Error(), c.Password) || strings.Contains(fmt.Sprintf("%+v", err), c.Password) {
			t.Errorf("error holds the password: %v", err)
		}
		if !strings.Contains(err.Error(), "login admin:[redacted] failed") {
			t.Errorf("error %q: want the scrubbed driver message", err)
		}
		if !strings.Contains(logs.String(), "retrying") {
			t.Errorf("no retry logged: %s", logs.String())
		}
		if strings.Contains(logs.String(), c.Password) {
			t.Errorf("logs hold the password:\n%s", logs.String())
		}
	})
}

// TestPoolBadAddress: an address that is none fails at once.
func TestPoolBadAddress(t *testing.T) {
	p := New(Config{Drivers: fakeDrivers(nil, IPMI)})
	err := p.PowerOn(t.Context(), creds("", IPMI))
	if err == nil || !strings.Contains(err.Error(), "invalid address") {
		t.Errorf("err %v, want invalid address", err)
	}
}
