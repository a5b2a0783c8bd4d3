package clock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testwait"
)

func TestSystemIsHostClock(t *testing.T) {
	t.Setenv(OffsetEnv, "")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	got := c.Now()
	if got.Before(before) || got.After(time.Now()) {
		t.Fatalf("Now %v is not the host's clock", got)
	}
	if c.Offset() != 0 {
		t.Fatalf("offset %v, want 0", c.Offset())
	}
	var nilClock *Clock
	if nilClock.Now().IsZero() || nilClock.Offset() != 0 || nilClock.Err() != nil {
		t.Fatal("a nil clock is not the host's")
	}
}

func TestOffsetFileSteps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	t.Setenv(OffsetEnv, path)
	c, err := FromEnv() // no file yet: offset 0
	if err != nil {
		t.Fatal(err)
	}
	if c.Offset() != 0 {
		t.Fatalf("offset %v without a file, want 0", c.Offset())
	}
	for _, step := range []time.Duration{time.Hour, -time.Hour, 24 * time.Hour, 0} {
		if err := WriteOffset(path, step); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, "offset "+step.String(), 5*time.Second, func() bool { return c.Offset() == step })
		host := time.Now()
		got := c.Now()
		if d := got.Sub(host) - step; d < 0 || d > time.Second {
			t.Fatalf("step %v: Now is %v from the host's clock", step, got.Sub(host))
		}
	}
}

func TestBadOffsetKeepsLastAndSaysWhy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	if err := os.WriteFile(path, []byte("soon"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(path); err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Fatalf("a bad file at start: err %v, want one naming its value", err)
	}
	if err := WriteOffset(path, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	c, err := FromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("9000h"), 0o644); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the bad value noticed", 5*time.Second, func() bool { c.Offset(); return c.Err() != nil })
	if c.Offset() != 2*time.Hour {
		t.Fatalf("offset %v after a bad value, want the last good 2h", c.Offset())
	}
	if !strings.Contains(c.Err().Error(), "beyond") {
		t.Fatalf("err %v does not say the value is too large", c.Err())
	}
	if err := WriteOffset(path, MaxOffset+time.Hour); err == nil {
		t.Fatal("WriteOffset took an offset beyond MaxOffset")
	}
}
