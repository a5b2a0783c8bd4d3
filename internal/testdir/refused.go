package testdir

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Damage is one way a data directory loses or damages a file, for the
// tests of both daemons that a node refuses to start on it.
type Damage struct {
	// File is the file damaged, below the data directory: the refusal
	// must name it.
	File string
	// Apply damages the data directory dir.
	Apply func(t testing.TB, dir string)
}

// Damages are the ways the data directory of a Raft node whose store
// file is named store can be damaged: raft.db removed, emptied or
// truncated; the store removed, emptied or truncated; and the store past
// its log (the Raft directory replaced by that of earlier, a copy of the
// data directory taken before the store applied more).
func Damages(store, earlier string) map[string]Damage {
	log := filepath.Join("raft", "raft.db")
	return map[string]Damage{
		"raft.db removed":    {log, func(t testing.TB, dir string) { must(t, os.Remove(filepath.Join(dir, log))) }},
		"raft.db emptied":    {log, emptied(log)},
		"raft.db truncated":  {log, truncated(log)},
		store + " removed":   {store, func(t testing.TB, dir string) { must(t, os.Remove(filepath.Join(dir, store))) }},
		store + " emptied":   {store, emptied(store)},
		store + " truncated": {store, truncated(store)},
		"store past the log": {store, func(t testing.TB, dir string) {
			must(t, os.RemoveAll(filepath.Join(dir, "raft")))
			must(t, os.CopyFS(filepath.Join(dir, "raft"), os.DirFS(filepath.Join(earlier, "raft"))))
		}},
	}
}

func emptied(name string) func(testing.TB, string) {
	return func(t testing.TB, dir string) { must(t, os.Truncate(filepath.Join(dir, name), 0)) }
}

// truncated cuts a bbolt file in the middle of its pages.
func truncated(name string) func(testing.TB, string) {
	return func(t testing.TB, dir string) {
		path := filepath.Join(dir, name)
		must(t, os.Truncate(path, int64(PagesEnd(t, path)/2)))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// StartRefused copies the data directory src to dst and damages the copy
// with d (Damage). Then run, a daemon on dst that writes to out, must
// refuse to start (Refused: it prints started if it starts), as
// CheckRefusal says.
func StartRefused(t testing.TB, src, dst string, d Damage, out Output, started string, run func(ctx context.Context) error, says ...string) {
	t.Helper()
	before := d.Copy(t, src, dst)
	CheckRefusal(t, Refused(t, 2*time.Minute, out, started, run), dst, d, before, says...)
}

// Copy copies the data directory src to dst, damages the copy, and
// returns what it then holds (Files).
func (d Damage) Copy(t testing.TB, src, dst string) map[string]string {
	t.Helper()
	must(t, os.CopyFS(dst, os.DirFS(src)))
	d.Apply(t, dst)
	return Files(t, dst)
}

// CheckRefusal fails the test unless err, a daemon's refusal to start on
// the data directory dir damaged by d, names the damaged file and says
// each of says, and dir holds what it held before (Files).
func CheckRefusal(t testing.TB, err error, dir string, d Damage, before map[string]string, says ...string) {
	t.Helper()
	for _, want := range append([]string{filepath.Join(dir, d.File)}, says...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q", want)
		}
	}
	if diff := cmp.Diff(before, Files(t, dir)); diff != "" {
		t.Errorf("a refused start changed the data directory (-before +after):\n%s", diff)
	}
}

// Output is a daemon's output for the operator, safe for concurrent use.
type Output interface {
	io.Writer
	String() string
}

// Refused runs a daemon (run, which writes to out) that must refuse to
// start, and returns its error. The test fails if run returns no error,
// if the daemon prints started to out (it started instead: it is
// stopped), or if it does neither within timeout.
func Refused(t testing.TB, timeout time.Duration, out Output, started string, run func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("the daemon ended without an error; it printed:\n%s", out)
			}
			t.Logf("refused: %v", err)
			return err
		case <-tick.C:
			if strings.Contains(out.String(), started) {
				cancel()
				<-done
				t.Fatalf("the daemon started:\n%s", out)
			}
		case <-deadline:
			t.Fatalf("the daemon neither ended nor started in %v; it printed:\n%s", timeout, out)
		}
	}
}
