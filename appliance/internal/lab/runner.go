package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Runner is a T for a program that runs a lab outside a test, such as the
// demo: Fatal stops the program's lab function (Run returns its error),
// cleanups run when Run returns, whatever happened, and log lines go to
// out.
type Runner struct {
	name string
	out  io.Writer
	ctx  context.Context

	mu       sync.Mutex
	failed   bool
	cleanups []func()
	dirs     int
	tmp      string
	logDir   string          // set by KeepLogs
	logNames map[string]bool // base names given out in logDir
}

// NewRunner returns a runner named name (it names namespaces and files)
// that logs to out and whose Context is ctx.
func NewRunner(ctx context.Context, name string, out io.Writer) *Runner {
	return &Runner{name: name, out: out, ctx: ctx}
}

// errFatal is the panic value of Fatal, recovered by Run.
type errFatal struct{ msg string }

// Run calls f, then the cleanups registered, in reverse order. It returns
// the message of a Fatal call as an error, or nil.
func (r *Runner) Run(f func(t T)) (err error) {
	defer r.cleanup()
	defer func() {
		if p := recover(); p != nil {
			fe, ok := p.(errFatal)
			if !ok {
				panic(p)
			}
			err = errors.New(fe.msg)
		}
	}()
	f(r)
	if r.Failed() {
		return errors.New("lab: errors were reported")
	}
	return nil
}

func (r *Runner) cleanup() {
	for {
		r.mu.Lock()
		if len(r.cleanups) == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[len(r.cleanups)-1]
		r.cleanups = r.cleanups[:len(r.cleanups)-1]
		r.mu.Unlock()
		func() {
			defer func() {
				if p := recover(); p != nil {
					if _, ok := p.(errFatal); !ok {
						panic(p)
					}
				}
			}()
			f()
		}()
	}
}

func (r *Runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *Runner) Context() context.Context { return r.ctx }
func (r *Runner) Helper()                  {}
func (r *Runner) Name() string             { return r.name }

func (r *Runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *Runner) Logf(format string, args ...any) { fmt.Fprintf(r.out, format+"\n", args...) }

func (r *Runner) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }
func (r *Runner) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.Logf("error: "+format, args...)
}

func (r *Runner) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *Runner) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	panic(errFatal{msg})
}

// Skipf stops like Fatalf: a program has nothing to skip to.
func (r *Runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }

// KeepLogs makes the lab keep the log files of the processes it starts
// (their stdout and stderr, a VM's serial console) in one new directory,
// which it returns, rather than in temporary directories: Run removes
// those, but not this one, so that the logs can be read afterwards.
// Call it before Run.
func (r *Runner) KeepLogs() (string, error) {
	dir, err := os.MkdirTemp("", "outpost-"+r.name+"-logs-")
	if err != nil {
		return "", fmt.Errorf("lab: log dir: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logDir, r.logNames = dir, make(map[string]bool)
	return dir, nil
}

// logBase returns the path, but for a suffix, of new log files named
// name (or name-2, name-3... if taken) in the directory of KeepLogs, and
// false if the runner keeps no logs.
func (r *Runner) logBase(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logDir == "" {
		return "", false
	}
	base := name
	for i := 2; r.logNames[base]; i++ {
		base = fmt.Sprintf("%s-%d", name, i)
	}
	r.logNames[base] = true
	return filepath.Join(r.logDir, base), true
}

// logFiles returns the paths of the log files of name, one per suffix
// (".stdout", ".stderr"): in the directory of a Runner's KeepLogs, which
// outlives the lab, or else in a new temporary directory.
func logFiles(t T, name string, suffixes ...string) []string {
	var base string
	if r, ok := t.(*Runner); ok {
		base, _ = r.logBase(name)
	}
	if base == "" {
		base = filepath.Join(t.TempDir(), name)
	}
	paths := make([]string, len(suffixes))
	for i, s := range suffixes {
		paths[i] = base + s
	}
	return paths
}

// TempDir returns a new directory, removed when Run returns.
func (r *Runner) TempDir() string {
	r.mu.Lock()
	if r.tmp == "" {
		dir, err := os.MkdirTemp("", "outpost-"+r.name+"-")
		if err != nil {
			r.mu.Unlock()
			r.Fatalf("lab: temp dir: %v", err)
		}
		r.tmp = dir
		r.cleanups = append([]func(){func() { os.RemoveAll(dir) }}, r.cleanups...)
	}
	r.dirs++
	dir := filepath.Join(r.tmp, fmt.Sprintf("%03d", r.dirs))
	r.mu.Unlock()
	if err := os.Mkdir(dir, 0o755); err != nil {
		r.Fatalf("lab: temp dir: %v", err)
	}
	return dir
}
