package workflow

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func checkReady(t *testing.T, st State, d time.Duration, want ...string) {
	t.Helper()
	if got := Ready(st, at(d)); !slices.Equal(got, want) {
		t.Fatalf("Ready at %s = %q, want %q", d, got, want)
	}
}

// TestInstall runs the linear install template to success.
func TestInstall(t *testing.T) {
	st := newState(t, install(), time.Hour)
	checkReady(t, st, 0, "wipe")
	var trs, all []Transition
	for _, s := range []struct {
		ops   []op
		ready []string // after the ops, at the time of the last
		d     time.Duration
	}{
		{[]op{start("wipe", 1, 0)}, nil, 0},
		{[]op{finish("wipe", 1, true, "wiped /dev/vda", 10*sec)}, []string{"image"}, 10 * sec},
		{[]op{start("image", 1, 11*sec), progress("image", 1, 50, "512 MiB", 20*sec), progress("image", 1, 100, "1 GiB", 30*sec)}, nil, 30 * sec},
		{[]op{finish("image", 1, true, "sha256 ok", 31*sec)}, []string{"config"}, 31 * sec},
		{[]op{start("config", 1, 32*sec), finish("config", 1, true, "", 32*sec)}, []string{"reboot"}, 32 * sec},
		{[]op{start("reboot", 1, 33*sec), finish("reboot", 1, true, "rebooting", 33*sec)}, nil, 33 * sec},
	} {
		st, trs = do(t, st, s.ops...)
		all = append(all, trs...)
		checkReady(t, st, s.d, s.ready...)
	}
	want := []Transition{
		wtr(Pending, Running, "", 0),
		tr("wipe", Pending, Running, 1, "", 0),
		tr("wipe", Running, Succeeded, 1, "wiped /dev/vda", 10*sec),
		tr("image", Pending, Running, 1, "", 11*sec),
		{Action: "image", From: Running, To: Running, Attempt: 1, Progress: 50, Message: "512 MiB", At: at(20 * sec)},
		{Action: "image", From: Running, To: Running, Attempt: 1, Progress: 100, Message: "1 GiB", At: at(30 * sec)},
		tr("image", Running, Succeeded, 1, "sha256 ok", 31*sec),
		tr("config", Pending, Running, 1, "", 32*sec),
		tr("config", Running, Succeeded, 1, "", 32*sec),
		tr("reboot", Pending, Running, 1, "", 33*sec),
		tr("reboot", Running, Succeeded, 1, "rebooting", 33*sec),
		wtr(Running, Succeeded, "", 33*sec),
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	p, _ := NewPlan(install(), types)
	wantState := State{
		Status: Succeeded, Deadline: at(time.Hour), StartedAt: t0, FinishedAt: at(33 * sec), Plan: p,
		Actions: []ActionState{
			{Name: "wipe", Status: Succeeded, Attempt: 1, StartedAt: t0, FinishedAt: at(10 * sec), Progress: 100, Message: "wiped /dev/vda"},
			{Name: "image", Status: Succeeded, Attempt: 1, StartedAt: at(11 * sec), FinishedAt: at(31 * sec), Progress: 100, Message: "sha256 ok"},
			{Name: "config", Status: Succeeded, Attempt: 1, StartedAt: at(32 * sec), FinishedAt: at(32 * sec), Progress: 100},
			{Name: "reboot", Status: Succeeded, Attempt: 1, StartedAt: at(33 * sec), FinishedAt: at(33 * sec), Progress: 100, Message: "rebooting"},
		},
	}
	if diff := cmp.Diff(wantState, st); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if next := NextTick(st); !next.IsZero() {
		t.Errorf("NextTick of a finished workflow = %v", next)
	}
}

// TestDiamond runs prep → (left, right) → join with the branches in
// parallel, right finishing first.
func TestDiamond(t *testing.T) {
	st := newState(t, diamond(), 0)
	st, _ = do(t, st, start("prep", 1, 0), finish("prep", 1, true, "", sec))
	checkReady(t, st, sec, "left", "right")
	st, _ = do(t, st, start("right", 1, 2*sec))
	checkReady(t, st, 2*sec, "left")
	st, _ = do(t, st, start("left", 1, 3*sec))
	checkReady(t, st, 3*sec)
	st, _ = do(t, st, finish("right", 1, true, "", 4*sec))
	checkReady(t, st, 4*sec) // join still waits for left
	if _, _, err := Start(st, "join", 1, at(4*sec)); err == nil {
		t.Fatal("join started before left finished")
	}
	st, _ = do(t, st, finish("left", 1, true, "", 5*sec))
	checkReady(t, st, 5*sec, "join")
	st, trs := do(t, st, start("join", 1, 6*sec), finish("join", 1, true, "", 6*sec))
	if st.Status != Succeeded {
		t.Fatalf("workflow %s, want succeeded", st.Status)
	}
	if want := wtr(Running, Succeeded, "", 6*sec); trs[len(trs)-1] != want {
		t.Errorf("last transition %+v, want %+v", trs[len(trs)-1], want)
	}
}

// TestRetryBackoff fails an action on each of its attempts, at odd times,
// and checks each retry's time: 2s, 4s, 8s, 16s after each failure.
func TestRetryBackoff(t *testing.T) {
	plan := []Action{{Name: "fetch", Type: "exec", Args: map[string]string{"command": "curl"}, Retries: 4, Backoff: 2 * time.Second}}
	st := newState(t, plan, 0)
	now := 0 * sec
	delays := []time.Duration{2 * sec, 4 * sec, 8 * sec, 16 * sec}
	for attempt := 1; attempt <= 5; attempt++ {
		st, _ = do(t, st, start("fetch", attempt, now))
		now += time.Duration(attempt) * 1500 * time.Millisecond
		var trs []Transition
		st, trs = do(t, st, finish("fetch", attempt, false, "exit status 7", now))
		a, _ := st.Action("fetch")
		if attempt == 5 {
			want := []Transition{tr("fetch", Running, Failed, 5, "exit status 7", now), wtr(Running, Failed, "action fetch failed: exit status 7", now)}
			if diff := cmp.Diff(want, trs); diff != "" {
				t.Fatalf("last attempt (-want +got):\n%s", diff)
			}
			if st.Reason != "action fetch failed: exit status 7" || a.Status != Failed {
				t.Fatalf("workflow %s (%s), action %s", st.Status, st.Reason, a.Status)
			}
			break
		}
		d := delays[attempt-1]
		if !a.NotBefore.Equal(at(now + d)) {
			t.Fatalf("attempt %d failed at %s: retry at %s, want %s", attempt, now, a.NotBefore.Sub(t0), now+d)
		}
		if msg := trs[1].Message; msg != fmt.Sprintf("retry %d of 4 after %s", attempt, d) {
			t.Errorf("retry message %q", msg)
		}
		checkReady(t, st, now+d-1)
		if _, _, err := Start(st, "fetch", attempt+1, at(now+d-1)); err == nil {
			t.Fatalf("attempt %d started 1ns before its backoff elapsed", attempt+1)
		}
		now += d
		checkReady(t, st, now, "fetch")
	}
}

// TestTimeoutRetrySuccess times out an attempt, retries it and succeeds.
func TestTimeoutRetrySuccess(t *testing.T) {
	st := newState(t, install(), 0)
	st, _ = do(t, st, imageRunning...)
	if next := NextTick(st); !next.Equal(at(11 * minute)) {
		t.Fatalf("NextTick = %s, want 11m", next.Sub(t0))
	}
	st, _ = do(t, st, tick(11*minute-1))
	if a, _ := st.Action("image"); a.Status != Running {
		t.Fatalf("image %s 1ns before its timeout", a.Status)
	}
	st, _ = do(t, st, tick(11*minute))
	checkReady(t, st, 11*minute+5*sec-1)
	checkReady(t, st, 11*minute+5*sec, "image")
	if next := NextTick(st); !next.IsZero() {
		t.Fatalf("NextTick with nothing running = %s", next.Sub(t0))
	}
	st, _ = do(t, st,
		start("image", 2, 12*minute), finish("image", 2, true, "", 13*minute),
		start("config", 1, 13*minute), finish("config", 1, true, "", 13*minute),
		start("reboot", 1, 13*minute), finish("reboot", 1, true, "", 13*minute))
	a, _ := st.Action("image")
	if st.Status != Succeeded || a.Attempt != 2 {
		t.Fatalf("workflow %s, image attempt %d", st.Status, a.Attempt)
	}
}

// TestTimeoutExhausted times out every attempt of image: the workflow
// times out.
func TestTimeoutExhausted(t *testing.T) {
	st := newState(t, install(), 0)
	st, _ = do(t, st, imageRunning...)
	// Attempt 1 from 1m times out at 11m, 2 from 11m5s at 21m5s, 3 from
	// 21m15s at 31m15s.
	st, _ = do(t, st, tick(11*minute), start("image", 2, 11*minute+5*sec), tick(21*minute+5*sec))
	if a, _ := st.Action("image"); !a.NotBefore.Equal(at(21*minute + 15*sec)) {
		t.Fatalf("second retry at %s, want 21m15s", a.NotBefore.Sub(t0))
	}
	st, _ = do(t, st, start("image", 3, 21*minute+15*sec))
	st, trs := do(t, st, tick(31*minute+15*sec))
	const reason = "action image timed out after 10m0s"
	want := []Transition{
		tr("image", Running, TimedOut, 3, "timed out after 10m0s", 31*minute+15*sec),
		tr("config", Pending, Skipped, 0, reason, 31*minute+15*sec),
		tr("reboot", Pending, Skipped, 0, reason, 31*minute+15*sec),
		wtr(Running, TimedOut, reason, 31*minute+15*sec),
	}
	if diff := cmp.Diff(want, trs); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	if st.Status != TimedOut || st.Reason != reason {
		t.Errorf("workflow %s (%s)", st.Status, st.Reason)
	}
	checkReady(t, st, time.Hour)
}

// TestContinue fails an action with on_failure continue for good: its
// dependent runs and the workflow succeeds.
func TestContinue(t *testing.T) {
	st := newState(t, lenient(), 0)
	checkReady(t, st, 0, "inventory", "wipe")
	st, _ = do(t, st,
		start("inventory", 1, 0), start("wipe", 1, 0),
		finish("inventory", 1, false, "no lshw", sec), finish("wipe", 1, true, "", 2*sec))
	checkReady(t, st, 5*sec)
	checkReady(t, st, 6*sec, "inventory")
	st, _ = do(t, st, start("inventory", 2, 6*sec), finish("inventory", 2, false, "no lshw", 7*sec))
	checkReady(t, st, 7*sec, "reboot")
	st, _ = do(t, st, start("reboot", 1, 8*sec), finish("reboot", 1, true, "", 8*sec))
	want := []Status{Failed, Succeeded, Succeeded}
	var got []Status
	for _, a := range st.Actions {
		got = append(got, a.Status)
	}
	if st.Status != Succeeded || !slices.Equal(got, want) {
		t.Errorf("workflow %s, actions %v; want succeeded, %v", st.Status, got, want)
	}
}

// TestDuplicateReports runs the install with every report sent twice, and
// once late: the outcome is as if each was sent once.
func TestDuplicateReports(t *testing.T) {
	once := []op{
		start("wipe", 1, 0), finish("wipe", 1, true, "", sec),
		start("image", 1, 2*sec), progress("image", 1, 50, "half", 3*sec), finish("image", 1, false, "reset", 4*sec),
		start("image", 2, 9*sec), finish("image", 2, true, "", 10*sec),
		start("config", 1, 11*sec), finish("config", 1, true, "", 11*sec),
		start("reboot", 1, 12*sec), finish("reboot", 1, true, "", 12*sec),
	}
	want, wantTrs := do(t, newState(t, install(), 0), once...)
	st := newState(t, install(), 0)
	var all []Transition
	for i, o := range once {
		var trs []Transition
		st, trs = apply(t, st, o)
		all = append(all, trs...)
		if again, trs := apply(t, st, o); trs != nil || cmp.Diff(st, again) != "" {
			t.Fatalf("report %d again: transitions %v", i, trs)
		}
	}
	// Late duplicates of the reports about the first attempt of image.
	for _, o := range []op{start("image", 1, time.Minute), finish("image", 1, false, "reset", time.Minute)} {
		if again, trs := apply(t, st, o); trs != nil || cmp.Diff(st, again) != "" {
			t.Fatalf("late report: transitions %v", trs)
		}
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("state (-once +twice):\n%s", diff)
	}
	if diff := cmp.Diff(wantTrs, all); diff != "" {
		t.Errorf("transitions (-once +twice):\n%s", diff)
	}
}

// TestIllegalUnchanged sends reports that are refused at each step of a
// run, checking that they change nothing.
func TestIllegalUnchanged(t *testing.T) {
	illegal := []op{
		start("nope", 1, 0), finish("nope", 1, true, "", 0), progress("nope", 1, 1, "", 0),
		start("reboot", 2, time.Hour), start("config", 2, time.Hour), start("wipe", 3, time.Hour),
		finish("config", 2, true, "", time.Hour), finish("reboot", 2, false, "", time.Hour), finish("wipe", 0, true, "", 0),
		progress("config", 2, 1, "", time.Hour), progress("wipe", 1, 101, "", time.Hour), progress("reboot", 5, 1, "", time.Hour),
		finish("wipe", 1, false, "", time.Hour), // refused once wipe succeeded
	}
	steps := append(rebootRunning[:7:7], finish("reboot", 1, true, "", 6*minute))
	st := newState(t, install(), 0)
	for i := 0; i <= len(steps); i++ {
		for j, o := range illegal {
			if j == len(illegal)-1 && i < 2 {
				continue // wipe has not succeeded yet
			}
			before := deepCopy(t, st)
			got, trs, err := o(st)
			if err == nil {
				t.Fatalf("step %d: illegal report %d accepted", i, j)
			}
			if diff := cmp.Diff(before, got); diff != "" || trs != nil {
				t.Fatalf("step %d: refused report %d (%v) changed the state or made transitions %v:\n%s", i, j, err, trs, diff)
			}
			if diff := cmp.Diff(before, st); diff != "" {
				t.Fatalf("step %d: refused report %d modified its input:\n%s", i, j, diff)
			}
		}
		if i < len(steps) {
			st, _ = apply(t, st, steps[i])
		}
	}
	if _, _, err := Cancel(st, "", at(time.Hour)); err == nil {
		t.Error("cancelled a finished workflow")
	}
}

func TestNextTick(t *testing.T) {
	cases := map[string]struct {
		deadline time.Duration
		setup    []op
		want     time.Duration // -1 for none
	}{
		"pending, no deadline":              {want: -1},
		"pending, deadline":                 {deadline: time.Hour, want: time.Hour},
		"running without a timeout":         {setup: rebootRunning, want: -1},
		"running with a timeout":            {setup: imageRunning, want: 11 * minute},
		"a deadline before the timeout":     {deadline: 5 * minute, setup: imageRunning, want: 5 * minute},
		"retry pending, no timeout running": {setup: imageRetrying, want: -1},
		"finished":                          {deadline: time.Hour, setup: []op{cancel("", 0)}, want: -1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st, _ := do(t, newState(t, install(), tc.deadline), tc.setup...)
			got := NextTick(st)
			if (tc.want < 0) != got.IsZero() || (tc.want >= 0 && !got.Equal(at(tc.want))) {
				t.Errorf("NextTick = %v, want %s after t0", got, tc.want)
			}
		})
	}
}
