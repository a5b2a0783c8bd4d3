package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// Counting instructions with valgrind's callgrind, for benchmarks whose
// figure must not move with the other load on a shared machine (it has
// no hardware counters: perf stat says "not supported").
//
// A callgrindProc is a server started under callgrind. Callgrind counts
// every instruction the process runs; callgrind_control -d makes it write
// what it counted since its previous dump (a "part") to
// <out>.<n>, and dump sums the parts, so two dumps around some work give
// that work's instructions, start-up left out. Callgrind aborts on
// signals, so dump before stopping: stop kills the process.
//
// Go binaries need GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 under Debian
// 12's valgrind 3.19 (else SIGILL in runtime.cputicks, or an assertion on
// the preemption signals): callgrindGoEnv.

// callgrindGoEnv is the environment a Go program needs under callgrind.
var callgrindGoEnv = []string{"GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1"}

// callgrindProc is a process running under valgrind --tool=callgrind.
type callgrindProc struct {
	*benchProc
	control string // callgrind_control
	out     string // --callgrind-out-file; dump n is out.<n>
	// vgdb is the prefix of the pipes callgrind_control reaches the
	// process by (--vgdb-prefix): in the run's own directory, removed
	// with it, rather than /tmp, where a valgrind the benchmark kills
	// leaves its pipes behind.
	vgdb  string
	dumps int    // dumps made so far
	total uint64 // instructions in every dump so far
}

// callgrindTools finds valgrind and callgrind_control.
func callgrindTools() (valgrind, control string, err error) {
	if valgrind, err = exec.LookPath("valgrind"); err != nil {
		return "", "", fmt.Errorf("valgrind not found (Debian package valgrind): %w", err)
	}
	if control, err = exec.LookPath("callgrind_control"); err != nil {
		return "", "", fmt.Errorf("callgrind_control not found (Debian package valgrind): %w", err)
	}
	return valgrind, control, nil
}

// startCallgrind runs bin with args under callgrind in namespace ns, its
// output (valgrind's and the program's) in logPath and its profiles in
// dir, with env added to the benchmark's environment.
func startCallgrind(ns *lab.Netns, dir, logPath string, env []string, bin string, args ...string) (*callgrindProc, error) {
	valgrind, control, err := callgrindTools()
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "callgrind.out")
	vgdb := filepath.Join(dir, "vgdb")
	vgArgs := append([]string{"--tool=callgrind", "--callgrind-out-file=" + out, "--vgdb-prefix=" + vgdb, bin}, args...)
	p, err := startProc(ns, logPath, env, valgrind, vgArgs...)
	if err != nil {
		return nil, err
	}
	return &callgrindProc{benchProc: p, control: control, out: out, vgdb: vgdb}, nil
}

// callgrindDumpWait bounds the wait for a dump: callgrind writes it
// when the program next runs, some fifty times slower than it would, and
// slower still on a busy machine (a minute was not always enough at a
// load average of 10 on two cores).
const callgrindDumpWait = 5 * time.Minute

// dump has callgrind write what it counted since the previous dump (a
// part) and returns the instructions the process ran from its start to
// now: the sum of every part so far.
func (c *callgrindProc) dump(ctx context.Context) (uint64, error) {
	if c.exited() {
		return 0, fmt.Errorf("callgrind: exited; %s", c.logTail())
	}
	pid := strconv.Itoa(c.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(ctx, callgrindDumpWait+time.Minute)
	defer cancel()
	// callgrind_control finds the process by the pipes valgrind's
	// gdbserver makes once it runs; until then it says "No active
	// callgrind runs detected" and exits 0.
	err := pollEvery(ctx, 200*time.Millisecond, callgrindDumpWait, func() error {
		out, err := exec.CommandContext(ctx, c.control, "--vgdb-prefix="+c.vgdb, "-d", pid).CombinedOutput()
		if err == nil && !strings.Contains(string(out), "OK.") {
			err = errors.New("not acknowledged")
		}
		if err != nil {
			return fmt.Errorf("%s -d %s: %v: %s", c.control, pid, err, bytes.TrimSpace(out))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("callgrind: %w", err)
	}
	c.dumps++
	path := fmt.Sprintf("%s.%d", c.out, c.dumps)
	// callgrind_control returns once the dump is asked for; the file is
	// complete when its totals line is there.
	var ir uint64
	err = pollEvery(ctx, 100*time.Millisecond, callgrindDumpWait, func() error {
		var err error
		ir, err = readCallgrindTotal(path)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("callgrind: dump %d: %w", c.dumps, err)
	}
	c.total += ir
	return c.total, nil
}

// stop kills the process: callgrind aborts on SIGTERM anyway, and what
// it counted after the last dump is not wanted.
func (c *callgrindProc) stop() { c.benchProc.kill() }

// errNoTotals is readCallgrindTotal's answer for a file callgrind has not
// finished writing: its "totals:" line is its last.
var errNoTotals = errors.New("no totals line")

// readCallgrindTotal reads the instructions (Ir, the first event) of a
// callgrind output file from its "summary:" line, once its "totals:"
// line, the last, says the file is whole.
func readCallgrindTotal(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseCallgrindTotal(f)
}

// parseCallgrindTotal is readCallgrindTotal on an open file.
func parseCallgrindTotal(r io.Reader) (uint64, error) {
	fields := map[string]string{} // events, summary, totals
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if ok && (key == "events" || key == "summary" || key == "totals") {
			fields[key] = strings.TrimSpace(val)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if ev, _, _ := strings.Cut(fields["events"], " "); ev != "Ir" {
		return 0, fmt.Errorf("first event is %q, not Ir", ev)
	}
	if fields["totals"] == "" {
		return 0, errNoTotals
	}
	total, err := firstCount(fields["totals"])
	if err != nil {
		return 0, fmt.Errorf("totals: %w", err)
	}
	// The header's summary is the part's count when the dump was
	// triggered; the totals, the sum of its cost lines, may hold a few
	// thousand instructions more, run while it was written.
	if s := fields["summary"]; s != "" {
		if total, err = firstCount(s); err != nil {
			return 0, fmt.Errorf("summary: %w", err)
		}
	}
	return total, nil
}

// firstCount parses the first count of a line of counts ("103335787 12").
func firstCount(counts string) (uint64, error) {
	first, _, _ := strings.Cut(counts, " ")
	return strconv.ParseUint(first, 10, 64)
}

// kill ends the process group at once and waits for it.
func (p *benchProc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}
