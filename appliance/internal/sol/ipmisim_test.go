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

	first := attach(ctx, t, m, "vm1", true)
	waitState(ctx, t, first, sol.Connected)
	if _, err := l.sim.IPMITool(ctx, "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	boot := readUntilCtx(ctx, t, first, "outpost-installer:")
	t.Logf("boot messages through SOL: %d bytes", len(boot))
	probe := fmt.Sprintf("sol-probe-%d", os.Getpid())
	typeLine(t, first, probe)
	readUntilCtx(ctx, t, first, probe) // the VM echoed it

	second := attach(ctx, t, m, "vm1", false)
	if got := readUntilCtx(ctx, t, second, probe); !strings.Contains(got, "outpost-installer:") {
		t.Errorf("the second viewer's scrollback lacks the boot messages: %q", got)
	}
	since := second.Status().Since
	first.Close()

	// The session outlives the first viewer, and all of them.
	third := attach(ctx, t, m, "vm1", true)
	typeLine(t, third, probe+"-b")
	readUntilCtx(ctx, t, second, probe+"-b")
	second.Close()
	third.Close()
	back := attach(ctx, t, m, "vm1", false)
	if got := readUntilCtx(ctx, t, back, probe+"-b"); !strings.Contains(got, probe+"\r") || !back.Status().Since.Equal(since) {
		t.Errorf("a viewer back after all left: scrollback %q, since %v (was %v): want the same session", got, back.Status().Since, since)
	}

	// ipmi_sim restarts (and the VM with it, powered off): the session
	// reconnects, and the VM powered on again is seen and typed to.
	l.sim.Restart()
	waitState(ctx, t, back, sol.Reconnecting)
	t.Logf("link lost: %s", back.Status().Error)
	waitState(ctx, t, back, sol.Connected)
	if _, err := l.sim.IPMITool(ctx, "chassis", "power", "on"); err != nil {
		t.Fatal(err)
	}
	readUntilCtx(ctx, t, back, "outpost-installer:")
	writer := attach(ctx, t, m, "vm1", true)
	typeLine(t, writer, probe+"-after-restart")
	readUntilCtx(ctx, t, back, probe+"-after-restart")

	file, _ := os.ReadFile(l.serial)
	if !bytes.Contains(file, []byte(probe+"-after-restart")) || !bytes.Contains(file, []byte("outpost-installer:")) {
		t.Errorf("the serial file %s lacks what SOL showed", l.serial)
	}

	wrong := attach(ctx, t, m, "wrongpw", false)
	waitState(ctx, t, wrong, sol.Reconnecting)
	t.Logf("wrong password: %s", wrong.Status().Error)
	if strings.Contains(logs.String(), l.sim.Password[5:]) {
		t.Error("the BMC password (or the wrong one, which shares its tail) is in the logs")
	}
}

func attach(ctx context.Context, t *testing.T, m *sol.Manager, machine string, writer bool) *sol.Viewer {
	t.Helper()
	v, err := m.Attach(ctx, machine, writer)
	if err != nil {
		t.Fatalf("attach %s: %v", machine, err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// readUntilCtx is readUntil that gives up (closing v) when ctx ends.
func readUntilCtx(ctx context.Context, t *testing.T, v *sol.Viewer, want string) string {
	t.Helper()
	stop := context.AfterFunc(ctx, func() { v.Close() })
	defer stop()
	return readUntil(t, v, want)
}

// waitState waits until v's session is in state.
func waitState(ctx context.Context, t *testing.T, v *sol.Viewer, state sol.State) {
	t.Helper()
	for v.Status().State != state {
		select {
		case <-v.Changed():
		case <-ctx.Done():
			t.Fatalf("the session never became %s: %+v", state, v.Status())
		}
	}
}

// typeLine types line and Enter, a key at a time, as a person would.
func typeLine(t *testing.T, v *sol.Viewer, line string) {
	t.Helper()
	for _, b := range []byte(line + "\r") {
		if _, err := v.Write([]byte{b}); err != nil {
			t.Fatalf("type %q: %v", line, err)
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
