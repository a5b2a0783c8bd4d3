package app

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// setNice gives every thread of the process the nice value, those the Go
// runtime starts afterwards too. It runs in a child process (this test's
// binary again), whose priority it lowers: lowering needs no privilege.
func TestSetNiceEveryThread(t *testing.T) {
	if os.Getenv("OUTPOST_TEST_SETNICE") == "1" {
		setNice(7, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		// More threads, made after setNice, must have it too.
		done := make(chan struct{})
		for range 8 {
			go func() { lockedSpin(done) }()
		}
		defer close(done)
		bad := threadNices(t, 7)
		fmt.Printf("threads-not-niced=%d\n", bad)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSetNiceEveryThread$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OUTPOST_TEST_SETNICE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "threads-not-niced=0\n") {
		t.Errorf("child's threads not all at nice 7:\n%s", out)
	}
}

// lockedSpin holds an OS thread of its own until done is closed.
func lockedSpin(done chan struct{}) {
	lockOSThread()
	<-done
}

// threadNices counts the process's threads whose nice value is not want
// (field 19 of /proc/self/task/<tid>/stat).
func threadNices(t *testing.T, want int) int {
	tasks, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads: %v", err)
	}
	bad := 0
	for _, p := range tasks {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		// The command name, in parentheses, may hold spaces: count from
		// its end.
		f := strings.Fields(string(raw)[strings.LastIndexByte(string(raw), ')')+2:])
		if len(f) < 17 || f[16] != fmt.Sprint(want) {
			bad++
		}
	}
	return bad
}

func lockOSThread() { runtime.LockOSThread() }
