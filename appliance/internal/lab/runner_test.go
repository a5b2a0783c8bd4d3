package lab

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A Runner that keeps logs removes its processes and temporary files when
// Run returns, but keeps every process's stdout and stderr, each under a
// name of its own, in the directory KeepLogs returned.
func TestRunnerKeepLogs(t *testing.T) {
	r := NewRunner(t.Context(), "keeplogs", t.Output())
	logs, err := r.KeepLogs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(logs) })
	var tmp string
	var pids []int
	err = r.Run(func(lt T) {
		tmp = lt.TempDir()
		for _, word := range []string{"first", "second"} {
			p := StartProcess(lt, ProcessConfig{Name: "talker",
				Args: []string{"sh", "-c", "echo out " + word + "; echo err " + word + " >&2; exec sleep 600"}})
			ctx := lt.Context()
			for _, re := range []string{"^out " + word + "$", "^err " + word + "$"} {
				if _, err := p.WaitForLine(ctx, regexp.MustCompile(re)); err != nil {
					lt.Fatal(err)
				}
			}
			pids = append(pids, p.Pid())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the runner's temporary directory is still there: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d is still there after Run: %v", pid, err)
		}
	}
	want := map[string]string{
		"talker.stdout": "out first\n", "talker.stderr": "err first\n",
		"talker-2.stdout": "out second\n", "talker-2.stderr": "err second\n",
	}
	got := map[string]string{}
	entries, err := os.ReadDir(logs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(logs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kept logs (-want +got):\n%s", diff)
	}
}

// Without KeepLogs, a Runner removes its processes' logs with the rest.
func TestRunnerRemovesLogs(t *testing.T) {
	r := NewRunner(t.Context(), "droplogs", t.Output())
	var files []string
	err := r.Run(func(lt T) {
		p := StartProcess(lt, ProcessConfig{Name: "talker", Args: []string{"sh", "-c", "echo out; exec sleep 600"}})
		if _, err := p.WaitForLine(lt.Context(), regexp.MustCompile("^out$")); err != nil {
			lt.Fatal(err)
		}
		files = []string{p.Stdout, p.Stderr}
	})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(files, func(f string) bool { _, err := os.Stat(f); return err == nil }) {
		t.Errorf("log files %q are still there", files)
	}
}
