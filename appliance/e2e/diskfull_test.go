package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// smallFS mounts a tmpfs of size (mount's size=, e.g. "48m") on dir, so
// that a node whose data directory it is can run out of space, and
// unmounts it (lazily: a node may still hold files) when the test ends.
func smallFS(t *testing.T, dir, size string) {
	t.Helper()
	lab.Require(t, "root")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs of %s on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fillFS writes dir/fill until its filesystem has no space left.
func fillFS(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	for i := range buf[:4096] { // the last pages too
		if _, err := f.Write(buf[i : i+1]); err != nil {
			break
		}
	}
}

// freeFS removes fillFS's file.
func freeFS(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
}

func TestDiskFullExplore(t *testing.T) {
	c := newCluster(t)
	n1 := c.addNode("n1", "")
	smallFS(t, n1.dataDir, "64m")
	c.start(n1)
	c.token = c.waitAdminToken(n1)
	for i := 2; i <= 3; i++ {
		c.start(c.addNode(fmt.Sprintf("n%d", i), n1.apiURL))
	}
	leader := c.waitFormed(c.nodes...)
	t.Logf("leader %s", leader)
	w := startWriters(c, 4, 100000)
	defer w.abort()
	c.waitFor(60*time.Second, "writes before the fill", func() error {
		if n := w.ackedCount(); n < 50 {
			return fmt.Errorf("%d writes acknowledged", n)
		}
		return nil
	})
	fillFS(t, n1.dataDir)
	t.Logf("filled; %d acked", w.ackedCount())
	for range 30 {
		time.Sleep(time.Second)
		line := fmt.Sprintf("acked=%d retried=%d", w.ackedCount(), w.retried.Load())
		for _, n := range c.nodes {
			st, err := c.status(n)
			line += fmt.Sprintf(" | %s running=%v leader=%s state=%s applied=%d err=%v", n.id, n.running(), st.LeaderID, st.State, st.AppliedIndex, err)
		}
		t.Log(line)
	}
	freeFS(t, n1.dataDir)
	for range 20 {
		time.Sleep(time.Second)
		line := fmt.Sprintf("acked=%d retried=%d", w.ackedCount(), w.retried.Load())
		for _, n := range c.nodes {
			st, err := c.status(n)
			line += fmt.Sprintf(" | %s running=%v leader=%s state=%s applied=%d err=%v", n.id, n.running(), st.LeaderID, st.State, st.AppliedIndex, err)
		}
		t.Log(line)
	}
	w.stop()
	b, _ := os.ReadFile(n1.proc.stderr)
	os.WriteFile("/tmp/n1.stderr", b, 0o644)
	t.FailNow()
}

func TestDiskFullExplore1(t *testing.T) {
	c := newCluster(t)
	n1 := c.addNode("n1", "")
	smallFS(t, n1.dataDir, "64m")
	c.start(n1)
	c.token = c.waitAdminToken(n1)
	c.waitFormed(c.nodes...)
	w := startWriters(c, 4, 100000)
	defer w.abort()
	c.waitFor(60*time.Second, "writes before the fill", func() error {
		if n := w.ackedCount(); n < 50 {
			return fmt.Errorf("%d writes acknowledged", n)
		}
		return nil
	})
	fillFS(t, n1.dataDir)
	t.Logf("filled; %d acked", w.ackedCount())
	for range 20 {
		time.Sleep(time.Second)
		st, err := c.status(n1)
		t.Logf("acked=%d retried=%d running=%v leader=%s state=%s applied=%d err=%v", w.ackedCount(), w.retried.Load(), n1.running(), st.LeaderID, st.State, st.AppliedIndex, err)
	}
	freeFS(t, n1.dataDir)
	for range 20 {
		time.Sleep(time.Second)
		st, err := c.status(n1)
		t.Logf("acked=%d retried=%d running=%v leader=%s state=%s applied=%d err=%v", w.ackedCount(), w.retried.Load(), n1.running(), st.LeaderID, st.State, st.AppliedIndex, err)
	}
	w.stop()
	b, _ := os.ReadFile(n1.proc.stderr)
	os.WriteFile("/tmp/n1single.stderr", b, 0o644)
	t.FailNow()
}
