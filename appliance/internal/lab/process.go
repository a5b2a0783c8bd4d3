package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// ProcessConfig describes a long-running process.
type ProcessConfig struct {
	// Name labels the process in messages and names its log files.
	// Default: the base name of Args[0].
	Name string
	// Netns is the namespace to run in; nil runs in the test's own.
	Netns *Netns
	// Args is the program and its arguments. The program is looked up in
	// PATH and the sbin directories; a missing one skips or fails the
	// test as Require does.
	Args []string
	// Env is added to the test's environment.
	Env []string
	// Dir is the working directory; default the test's.
	Dir string
}

// Process is a running command in its own process group, its stdout and
// stderr captured to files. When the test ends its group is killed and
// reaped; when the process exits by itself, what it left in its group is
// killed. If the test failed, the last lines of the output are logged.
type Process struct {
	Name   string
	Stdout string // path of the file holding its stdout
	Stderr string // path of the file holding its stderr

	t        T
	outLabel string // what stdout is, in messages
	cmd      *exec.Cmd
	feed     *feed
	flush    []*lineWriter

	mu     sync.Mutex
	exited bool // the leader has exited; its group id may be reused once reaped

	done chan struct{}
	err  error // from cmd.Wait, set before done is closed
}

// StartProcess starts cfg and stops it when the test ends.
func StartProcess(t T, cfg ProcessConfig) *Process {
	t.Helper()
	return startProcess(t, cfg, true)
}

// Start is StartProcess of name and args inside n.
func (n *Netns) Start(t T, name string, args ...string) *Process {
	t.Helper()
	return StartProcess(t, ProcessConfig{Netns: n, Args: append([]string{name}, args...)})
}

// startProcess starts cfg; the lines of stdout, and of stderr when
// stderrLines is set, feed WaitForLine.
func startProcess(t T, cfg ProcessConfig, stderrLines bool) *Process {
	t.Helper()
	p := newProcess(t, cfg)
	closeLogs, err := p.captureOutput(stderrLines)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := p.cmd.Start(); err != nil {
		closeLogs()
		t.Fatalf("lab: start %s: %v", p.Name, err)
	}
	go func() {
		p.wait()
		closeLogs()
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			p.logTail()
		}
	})
	return p
}

// newProcess prepares cfg's command.
func newProcess(t T, cfg ProcessConfig) *Process {
	t.Helper()
	if len(cfg.Args) == 0 {
		t.Fatal("lab: StartProcess: no program")
	}
	prog := mustLookPath(t, cfg.Args[0])
	name := cfg.Name
	if name == "" {
		name = filepath.Base(prog)
	}
	logs := logFiles(t, name, ".stdout", ".stderr")
	p := &Process{
		Name:     name,
		Stdout:   logs[0],
		Stderr:   logs[1],
		t:        t,
		outLabel: "stdout",
		feed:     newFeed(),
		done:     make(chan struct{}),
	}
	if cfg.Netns != nil {
		p.cmd = cfg.Netns.Command(prog, cfg.Args[1:]...)
	} else {
		p.cmd = exec.Command(prog, cfg.Args[1:]...)
	}
	if len(cfg.Env) > 0 {
		p.cmd.Env = append(os.Environ(), cfg.Env...)
	}
	p.cmd.Dir = cfg.Dir
	// Its own group, so that cleanup kills everything it started. SIGKILL
	// should the test binary die without running its cleanups (a test
	// timeout, for one): the signal comes when the forking thread dies,
	// and Go's threads live as long as the process (but for locked ones,
	// which never start processes here).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = 5 * time.Second
	return p
}

// captureOutput creates the log files and points the command at them.
func (p *Process) captureOutput(stderrLines bool) (closeLogs func(), err error) {
	stdout, err := os.Create(p.Stdout)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(p.Stderr)
	if err != nil {
		stdout.Close()
		return nil, err
	}
	ow := &lineWriter{f: stdout, feed: p.feed, stream: 1}
	p.cmd.Stdout = ow
	p.flush = append(p.flush, ow)
	p.cmd.Stderr = stderr
	if stderrLines {
		ew := &lineWriter{f: stderr, feed: p.feed, stream: 2}
		p.cmd.Stderr = ew
		p.flush = append(p.flush, ew)
	}
	return func() {
		stdout.Close()
		stderr.Close()
	}, nil
}

// wait reaps the process once it exits, killing the rest of its group
// first: until the leader is reaped its group id cannot be reused.
func (p *Process) wait() {
	pid := p.cmd.Process.Pid
	waitedErr := waitExited(pid)
	p.mu.Lock()
	p.exited = true
	if waitedErr == nil {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	p.err = p.cmd.Wait()
	for _, w := range p.flush {
		w.flushPartial()
	}
	p.feed.close()
	close(p.done)
}

// waitExited blocks until pid has exited, without reaping it.
func waitExited(pid int) error {
	const (
		pPID    = 1
		wExited = 4
		wNowait = 0x1000000
	)
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), wExited|wNowait, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// Pid is the process's id, which is also its process group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for status 0) once it has exited.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return errors.New("lab: " + p.Name + " is still running")
	}
}

// Wait waits for the process to exit and returns its exit error (nil for
// status 0), or ctx's error.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("lab: wait for %s: %w", p.Name, ctx.Err())
	}
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return os.ErrProcessDone
	}
	return p.cmd.Process.Signal(sig)
}

// Kill kills the process's group with SIGKILL and waits until it has been
// reaped. It is safe to call more than once.
func (p *Process) Kill() {
	p.mu.Lock()
	if !p.exited {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("lab: %s (pid %d) did not exit 30s after SIGKILL", p.Name, p.cmd.Process.Pid)
	}
}

// WaitForLine waits for a line of output (stdout or stderr) that matches
// re and returns it, without its line ending. Lines are consumed as
// described in the package comment, each stream on its own. It fails when
// ctx is done or the process exits first.
func (p *Process) WaitForLine(ctx context.Context, re *regexp.Regexp) (string, error) {
	from := 0
	for {
		line, next, wake, closed := p.feed.match(re, from)
		if wake == nil {
			return line, nil
		}
		if closed {
			<-p.done
			return "", fmt.Errorf("lab: %s exited (%v) before printing a line matching %q", p.Name, p.err, re)
		}
		from = next
		select {
		case <-wake:
		case <-ctx.Done():
			return "", fmt.Errorf("lab: %s printed no line matching %q: %w", p.Name, re, ctx.Err())
		}
	}
}

// logTail logs the end of the process's output.
func (p *Process) logTail() {
	p.t.Logf("lab: %s ended: %v; last lines of its %s (%s):\n%s", p.Name, p.err, p.outLabel, p.Stdout, tail(p.Stdout, 40))
	p.t.Logf("lab: last lines of %s's stderr (%s):\n%s", p.Name, p.Stderr, tail(p.Stderr, 40))
}
