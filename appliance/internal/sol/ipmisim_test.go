package sol_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/sol"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/seal"
)

// labVM is a VM behind ipmi_sim in a namespace of its own, booting the
// installer (whose console echoes what is typed on it), and a store
// holding it as machine "vm1", and "wrongpw" (its BMC with a wrong
// password).
type labVM struct {
	ns     *lab.Netns
	sim    *lab.IPMISim
	serial string // the file the VM's console also goes to
	db     *store.DB
	key    *seal.Key
}

func startLabVM(t *testing.T) *labVM {
	t.Helper()
	ns, sim, serial := lab.StartConsoleVM(t, lab.BuildImages(t), "sol")
	if sim.SOL == "" {
		t.Fatal("the simulator has no serial-over-LAN")
	}
	db, key := openStore(t)
	apptest.Put(t, db, time.Now(), bmcMachine(key, "vm1", 1, sim.Addr, sim.Username, sim.Password),
		bmcMachine(key, "wrongpw", 2, sim.Addr, sim.Username, "wrong"+sim.Password[5:]))
	return &labVM{ns: ns, sim: sim, serial: serial, db: db, key: key}
}

// manager runs a Manager (this node leads) whose BMC links are made in
// the lab's namespace, logging to logs and the test's output.
func (l *labVM) manager(t *testing.T, logs io.Writer) *sol.Manager {
	t.Helper()
	lead := &leader{}
	lead.Store(true)
	return run(t, sol.Config{Store: l.db, Key: l.key, Leader: lead, BMC: sol.IPMI{Dial: l.ns.DialContext},
		Linger: time.Minute, Log: slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), nil))})
}

// TestIPMISimConsole holds a real console: a QEMU VM behind ipmi_sim,
// through go-ipmi. A viewer reads the boot messages and types a key
// that reaches the VM (its console echoes it); a second viewer reads
// the scrollback; the session outlives its viewers; after ipmi_sim
// restarts the session reconnects by itself; a wrong password is
// refused; the password is in no log.
func TestIPMISimConsole(t *testing.T) {
	l := startLabVM(t)
	logs := &apptest.SyncBuffer{}
	m := l.manager(t, logs)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	first := follow(ctx, t, m, "vm1", true)
	first.waitState(ctx, t, sol.Connected)
	if _, err := l.sim.IPMITool(ctx, "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	// The installer's boot messages (ipmi_sim may connect to the serial
	// port after the kernel's: see lab.StartIPMISim).
	first.see(ctx, t, "outpost-installer:")
	t.Logf("boot messages through SOL: %d bytes", len(first.text()))
	base := fmt.Sprintf("sol-probe-%d", os.Getpid())
	probe := first.probe(ctx, t, first, base) // the VM echoed it

	second := follow(ctx, t, m, "vm1", false)
	second.see(ctx, t, probe+"\r")
	if !strings.Contains(second.text(), "outpost-installer:") {
		t.Errorf("the second viewer's scrollback lacks the boot messages: %q", second.text())
	}
	since := second.v.Status().Since
	first.v.Close()

	// The session outlives the first viewer, and all of them.
	third := follow(ctx, t, m, "vm1", true)
	probeB := second.probe(ctx, t, third, base+"-b")
	second.v.Close()
	third.v.Close()
	back := follow(ctx, t, m, "vm1", false)
	back.see(ctx, t, probeB+"\r")
	if !strings.Contains(back.text(), probe+"\r") || !back.v.Status().Since.Equal(since) {
		t.Errorf("a viewer back after all left: scrollback %q, since %v (was %v): want the same session", back.text(), back.v.Status().Since, since)
	}

	// ipmi_sim restarts (and the VM with it, powered off): the session
	// reconnects, and the VM powered on again is seen and typed to.
	l.sim.Restart()
	back.waitState(ctx, t, sol.Reconnecting)
	t.Logf("link lost: %s", back.v.Status().Error)
	back.waitState(ctx, t, sol.Connected)
	before := len(back.text())
	if _, err := l.sim.IPMITool(ctx, "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	back.seeFrom(ctx, t, before, "outpost-installer:")
	writer := follow(ctx, t, m, "vm1", true)
	after := back.probe(ctx, t, writer, base+"-after-restart")

	file, _ := os.ReadFile(l.serial)
	if !bytes.Contains(file, []byte(after)) || !bytes.Contains(file, []byte("outpost-installer:")) {
		t.Errorf("the serial file %s lacks what SOL showed", l.serial)
	}

	wrong := follow(ctx, t, m, "wrongpw", false)
	wrong.waitState(ctx, t, sol.Reconnecting)
	t.Logf("wrong password: %s", wrong.v.Status().Error)
	if strings.Contains(logs.String(), l.sim.Password[5:]) {
		t.Error("the BMC password (or the wrong one, which shares its tail) is in the logs")
	}
}

// tail follows a viewer: a goroutine reads it into a buffer.
type tail struct {
	v    *sol.Viewer
	mu   sync.Mutex
	got  []byte
	err  error         // why the viewer ended
	more chan struct{} // capacity 1: got more, or err
}

// follow attaches a viewer and reads it until the test ends.
func follow(ctx context.Context, t *testing.T, m *sol.Manager, machine string, writer bool) *tail {
	t.Helper()
	v, err := m.Attach(ctx, machine, writer)
	if err != nil {
		t.Fatalf("attach %s: %v", machine, err)
	}
	t.Cleanup(func() { v.Close() })
	tl := &tail{v: v, more: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := v.Read(buf)
			tl.mu.Lock()
			tl.got, tl.err = append(tl.got, buf[:n]...), err
			tl.mu.Unlock()
			select {
			case tl.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return tl
}

func (tl *tail) text() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return string(tl.got)
}

// wait waits until what the viewer read from offset from on holds
// want, and reports false if ctx ends first. A viewer that ends fails
// the test.
func (tl *tail) wait(ctx context.Context, t *testing.T, from int, want string) bool {
	t.Helper()
	for {
		tl.mu.Lock()
		got, err := string(tl.got), tl.err
		tl.mu.Unlock()
		switch {
		case strings.Contains(got[from:], want):
			return true
		case err != nil:
			t.Fatalf("the viewer ended (%v) before showing %q; it read:\n%s", err, want, got)
		}
		select {
		case <-tl.more:
		case <-ctx.Done():
			return false
		}
	}
}

// see waits until the viewer shows want, or fails the test.
func (tl *tail) see(ctx context.Context, t *testing.T, want string) { tl.seeFrom(ctx, t, 0, want) }

// seeFrom waits until the viewer shows want after its first from bytes.
func (tl *tail) seeFrom(ctx context.Context, t *testing.T, from int, want string) {
	t.Helper()
	if !tl.wait(ctx, t, from, want) {
		t.Fatalf("the viewer never showed %q; it read:\n%s", want, tl.text())
	}
}

// probe types lines on w's keyboard until the VM echoes one whole to
// this viewer (lab.ProbeEcho), and returns it.
func (tl *tail) probe(ctx context.Context, t *testing.T, w *tail, base string) string {
	t.Helper()
	line, err := lab.ProbeEcho(ctx, func(line string) error {
		for _, b := range []byte(line + "\r") {
			if _, err := w.v.Write([]byte{b}); err != nil {
				return err
			}
		}
		return nil
	}, func(ctx context.Context, s string) bool { return tl.wait(ctx, t, 0, s) }, base)
	if err != nil {
		t.Fatalf("%v; the console shows:\n%s", err, tl.text())
	}
	return line
}

// waitState waits until the viewer's session is in state.
func (tl *tail) waitState(ctx context.Context, t *testing.T, state sol.State) {
	t.Helper()
	for tl.v.Status().State != state {
		select {
		case <-tl.v.Changed():
		case <-ctx.Done():
			t.Fatalf("the session never became %s: %+v", state, tl.v.Status())
		}
	}
}

// TestIPMIOpenLeavesNothing: an open console runs no goroutine of
// go-ipmi's but its own loop (go-ipmi's keep-alive, which Client.Connect
// starts, can crash the process when the client closes, see login), and
// once closed none is left.
func TestIPMIOpenLeavesNothing(t *testing.T) {
	sim := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "solopen", SOL: "127.0.0.1:9"}) // no console there
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := sol.IPMI{}.Open(ctx, sol.Target{Machine: "m", Address: sim.Addr, Username: sim.Username, Password: sim.Password})
	if err != nil {
		t.Fatal(err)
	}
	if g := ipmiGoroutines(); strings.Contains(g, "keepSessionAlive") {
		t.Errorf("go-ipmi's keep-alive runs:\n%s", g)
	}
	st.Close()
	for g := ipmiGoroutines(); g != ""; g = ipmiGoroutines() {
		select {
		case <-ctx.Done():
			t.Fatalf("go-ipmi's goroutines are left after Close:\n%s", g)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ipmiGoroutines returns the stacks of the goroutines in go-ipmi's code.
func ipmiGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "bougou/go-ipmi") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
