package sol_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outposthq/outpost/appliance/internal/sol"
	"github.com/outposthq/outpost/internal/errs"
)

// TestScrollback: a viewer who attaches late reads what the console
// printed before (the last Scrollback bytes of it), then the live bytes
// every viewer reads.
func TestScrollback(t *testing.T) {
	inBubble(t, sol.Config{Scrollback: 64}, func(t *testing.T, e *env) {
		first, con := e.open(t, "m1", false)
		con.print(t, "SeaBIOS\r\n")
		readUntil(t, first, "SeaBIOS\r\n")

		late := e.attach(t, "m1", false)
		if got := readUntil(t, late, "SeaBIOS\r\n"); got != "SeaBIOS\r\n" {
			t.Errorf("late viewer read %q first, want the scrollback %q", got, "SeaBIOS\r\n")
		}
		con.print(t, "Linux version 6.1\r\n")
		for i, v := range []*sol.Viewer{first, late} {
			if got := readUntil(t, v, "Linux"); got != "Linux version 6.1\r\n" {
				t.Errorf("viewer %d read %q, want the live line", i, got)
			}
		}

		// Past the ring's size only the last 64 bytes are kept.
		long := strings.Repeat("0123456789", 10) + "END"
		con.print(t, long)
		readUntil(t, first, "END")
		latest := e.attach(t, "m1", false)
		want := long[len(long)-64:]
		if got := readUntil(t, latest, "END"); got != want {
			t.Errorf("scrollback after 103 more bytes = %q, want the last 64: %q", got, want)
		}
		if n := e.bmc.opens(); n != 1 {
			t.Errorf("the BMC was opened %d times for one session, want 1", n)
		}
	})
}

// TestKeyboard: only the writer types; a new writer takes the keyboard
// over and the old one is told.
func TestKeyboard(t *testing.T) {
	inBubble(t, sol.Config{}, func(t *testing.T, e *env) {
		alice, con := e.open(t, "m1", true)
		synctest.Wait() // the link is up
		if _, err := alice.Write([]byte("a")); err != nil {
			t.Fatalf("the writer types: %v", err)
		}
		reader := e.attach(t, "m1", false)
		if _, err := reader.Write([]byte("r")); !errors.Is(err, sol.ErrReadOnly) {
			t.Errorf("a read-only viewer types: %v, want ErrReadOnly", err)
		}
		if st := reader.Status(); st.Writer || st.Viewers != 2 {
			t.Errorf("read-only viewer's status %+v, want writer false, 2 viewers", st)
		}

		bob := e.attach(t, "m1", true)
		synctest.Wait()
		select {
		case <-alice.Changed():
		default:
			t.Error("the old writer was not told it lost the keyboard")
		}
		st := alice.Status()
		if st.Writer || st.Notice == "" {
			t.Errorf("old writer's status %+v, want writer false and a notice", st)
		}
		if _, err := alice.Write([]byte("x")); !errors.Is(err, sol.ErrReadOnly) {
			t.Errorf("the old writer types: %v, want ErrReadOnly", err)
		}
		if _, err := bob.Write([]byte("b")); err != nil {
			t.Fatalf("the new writer types: %v", err)
		}
		if !bob.Status().Writer {
			t.Error("the new writer's status says it has no keyboard")
		}
		if got := con.got(); got != "ab" {
			t.Errorf("the console got %q, want %q", got, "ab")
		}

		// The writer leaves: nobody types until someone asks again.
		bob.Close()
		if _, err := bob.Write([]byte("y")); !errors.Is(err, sol.ErrClosed) {
			t.Errorf("a closed viewer types: %v, want ErrClosed", err)
		}
		if _, err := readEnd(bob); !errors.Is(err, sol.ErrClosed) {
			t.Errorf("a closed viewer reads: %v, want ErrClosed", err)
		}
	})
}

// TestLinger: the session outlives its viewers for Linger, keeping its
// scrollback and link, then closes; the next viewer opens a new one.
func TestLinger(t *testing.T) {
	inBubble(t, sol.Config{Linger: time.Minute}, func(t *testing.T, e *env) {
		v, con := e.open(t, "m1", false)
		con.print(t, "boot messages\r\n")
		readUntil(t, v, "boot messages")
		since := v.Status().Since
		v.Close()

		time.Sleep(59 * time.Second)
		con.print(t, "printed while nobody watched\r\n")
		back := e.attach(t, "m1", false)
		if got := readUntil(t, back, "nobody watched\r\n"); got != "boot messages\r\nprinted while nobody watched\r\n" {
			t.Errorf("viewer back within Linger read %q, want the whole scrollback", got)
		}
		if st := back.Status(); !st.Since.Equal(since) || con.isClosed() || e.bmc.opens() != 1 {
			t.Errorf("within Linger: since %v (was %v), link closed %v, opens %d: want the same session", st.Since, since, con.isClosed(), e.bmc.opens())
		}
		back.Close()

		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if !con.isClosed() {
			t.Fatal("the link is still open a Linger after the last viewer left")
		}
		fresh, con2 := e.open(t, "m1", false)
		con2.print(t, "new\r\n")
		if got := readUntil(t, fresh, "new\r\n"); got != "new\r\n" {
			t.Errorf("a new session's viewer read %q, want only what it printed", got)
		}
		if !fresh.Status().Since.After(since) {
			t.Error("the new session's Since is not after the old one's")
		}
	})
}

// TestReconnect: a failed link is opened again with backoff while the
// viewers stay, see the state, cannot type, and keep the scrollback.
func TestReconnect(t *testing.T) {
	inBubble(t, sol.Config{}, func(t *testing.T, e *env) {
		v, con := e.open(t, "m1", true)
		con.print(t, "before\r\n")
		readUntil(t, v, "before")
		<-v.Changed()

		con.breakWrites(io.ErrClosedPipe)
		if _, err := v.Write([]byte("x")); !errors.Is(err, sol.ErrNotConnected) {
			t.Errorf("typing as the link fails: %v, want ErrNotConnected", err)
		}
		e.bmc.setFail(errors.New("connect: no answer"))
		con.fail(errLink)
		synctest.Wait()
		st := v.Status()
		if st.State != sol.Reconnecting || !strings.Contains(st.Error, errLink.Error()) {
			t.Errorf("status after the link failed: %+v, want reconnecting with the error", st)
		}
		if _, err := v.Write([]byte("x")); !errors.Is(err, sol.ErrNotConnected) {
			t.Errorf("typing while reconnecting: %v, want ErrNotConnected", err)
		}
		// Backoff: 1 s, 2 s, 4 s (at most; jittered down to half).
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if n := e.bmc.opens(); n < 3 || n > 5 {
			t.Errorf("%d openings within 7 s of backoff 1 s doubling to 4 s, want 3 to 5", n)
		}
		if st := v.Status(); !strings.Contains(st.Error, "no answer") {
			t.Errorf("status error %q, want the last failure", st.Error)
		}

		e.bmc.setFail(nil)
		con2 := e.bmc.next(t)
		synctest.Wait()
		if st := v.Status(); st.State != sol.Connected || st.Error != "" {
			t.Errorf("status after reconnecting %+v, want connected, no error", st)
		}
		con2.print(t, "after\r\n")
		readUntil(t, v, "after")
		if _, err := v.Write([]byte("k")); err != nil || con2.got() != "k" {
			t.Errorf("typing after reconnecting: %v, the console got %q", err, con2.got())
		}
		late := e.attach(t, "m1", false)
		if got := readUntil(t, late, "after\r\n"); got != "before\r\nafter\r\n" {
			t.Errorf("scrollback across the reconnection %q", got)
		}
	})
}

// TestLeadership: when the node stops leading, its sessions close and
// their viewers end with ErrNotLeader; a follower attaches nothing; the
// next leader's session starts a new scrollback.
func TestLeadership(t *testing.T) {
	inBubble(t, sol.Config{}, func(t *testing.T, e *env) {
		v, con := e.open(t, "m1", true)
		con.print(t, "held by the old leader\r\n")
		readUntil(t, v, "old leader")
		since := v.Status().Since

		e.leader.Store(false)
		time.Sleep(sol.DefaultLeaderCheck)
		synctest.Wait()
		if _, err := readEnd(v); !errors.Is(err, sol.ErrNotLeader) {
			t.Errorf("viewer after the node stopped leading: %v, want ErrNotLeader", err)
		}
		if st := v.Status(); st.State != sol.Closed || st.Writer {
			t.Errorf("status of the ended viewer %+v", st)
		}
		if !con.isClosed() {
			t.Error("the BMC link is still open on a node that does not lead")
		}
		if _, err := e.m.Attach(context.Background(), "m1", false); !errors.Is(err, sol.ErrNotLeader) {
			t.Errorf("attach on a follower: %v, want ErrNotLeader", err)
		}

		time.Sleep(time.Second)
		e.leader.Store(true)
		fresh, con2 := e.open(t, "m1", false)
		con2.print(t, "new leader\r\n")
		if got := readUntil(t, fresh, "new leader"); got != "new leader\r\n" {
			t.Errorf("the new leader's viewer read %q: the old scrollback must not be claimed", got)
		}
		if st := fresh.Status(); !st.Since.After(since) {
			t.Errorf("the new session's Since %v is not after the old one's %v", st.Since, since)
		}
	})
}

// TestAttachRefused: what cannot have a console is refused at once with
// a domain error, and opens nothing.
func TestAttachRefused(t *testing.T) {
	inBubble(t, sol.Config{}, func(t *testing.T, e *env) {
		for id, want := range map[string]error{"ghost": errs.ErrNotFound, "nobmc": errs.ErrConflict, "rf": errs.ErrConflict} {
			if _, err := e.m.Attach(context.Background(), id, false); !errors.Is(err, want) {
				t.Errorf("attach %s: %v, want %v", id, err, want)
			}
		}
		if n := e.bmc.opens(); n != 0 {
			t.Errorf("%d openings for refused attaches", n)
		}
		e.m.Close()
		if _, err := e.m.Attach(context.Background(), "m1", false); !errors.Is(err, sol.ErrClosed) {
			t.Errorf("attach after Close: %v, want ErrClosed", err)
		}
	})
}

// TestLinkLostForGood: a session whose link fails does not reopen it
// once the node no longer leads (even before Run notices) or once its
// machine is deleted: its viewers end, saying why.
func TestLinkLostForGood(t *testing.T) {
	tests := map[string]struct {
		then func(t *testing.T, e *env)
		want error
	}{
		"off the leader":  {func(t *testing.T, e *env) { e.leader.Store(false) }, sol.ErrNotLeader},
		"machine deleted": {func(t *testing.T, e *env) { e.deleteMachine(t, "m1") }, errs.ErrNotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			inBubble(t, sol.Config{LeaderCheck: time.Hour}, func(t *testing.T, e *env) {
				v, con := e.open(t, "m1", false)
				synctest.Wait()
				tc.then(t, e)
				con.fail(errLink)
				if _, err := readEnd(v); !errors.Is(err, tc.want) {
					t.Errorf("viewer: %v, want %v", err, tc.want)
				}
				if n := e.bmc.opens(); n != 1 {
					t.Errorf("the BMC was opened %d times, want no reconnection", n)
				}
			})
		})
	}
}

// TestSlowViewer: a viewer that does not read ends once it is a
// scrollback behind; the others go on.
func TestSlowViewer(t *testing.T) {
	inBubble(t, sol.Config{Scrollback: 32}, func(t *testing.T, e *env) {
		slow := e.attach(t, "m1", false)
		fast, con := e.open(t, "m1", false)
		for i := range 5 {
			con.print(t, fmt.Sprintf("line %d.....\r\n", i)) // 14 bytes
			readUntil(t, fast, fmt.Sprintf("line %d", i))
		}
		got, err := readEnd(slow)
		if !errors.Is(err, sol.ErrTooSlow) {
			t.Errorf("slow viewer: %v, want ErrTooSlow", err)
		}
		if len(got) > 32 {
			t.Errorf("slow viewer held %d bytes, more than the scrollback of 32", len(got))
		}
		con.print(t, "still here")
		readUntil(t, fast, "still here")
	})
}

// TestPasswordHidden: the BMC password reaches the BMC and nowhere
// else: not the logs, not a status, not a printed or logged Target, even
// when the BMC library puts it in an error.
func TestPasswordHidden(t *testing.T) {
	inBubble(t, sol.Config{}, func(t *testing.T, e *env) {
		e.bmc.setFail(fmt.Errorf("rakp2: HMAC with key %q does not match", password))
		v := e.attach(t, "m1", false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st := v.Status()
		if st.State != sol.Reconnecting || st.Error == "" {
			t.Fatalf("status %+v, want reconnecting with an error", st)
		}
		e.bmc.mu.Lock()
		target := e.bmc.targets[0]
		e.bmc.mu.Unlock()
		if target.Password != password || target.Username != "admin" || target.Address != "192.0.2.10" {
			t.Errorf("the BMC was given %s with password ok=%v", target, target.Password == password)
		}
		var logged strings.Builder
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("target", "t", target)
		shown := map[string]string{
			"status": fmt.Sprintf("%+v", st), "logs": e.logs.String(), "slog": logged.String(),
			"%v": fmt.Sprintf("%v", target), "%+v": fmt.Sprintf("%+v", target), "%#v": fmt.Sprintf("%#v", target), "%s": fmt.Sprint(target),
		}
		for where, text := range shown {
			if strings.Contains(text, password) {
				t.Errorf("the password is in the %s: %s", where, text)
			}
		}
		if !strings.Contains(e.logs.String(), "[redacted]") {
			t.Errorf("the failure was not logged (redacted): %s", e.logs.String())
		}
	})
}
