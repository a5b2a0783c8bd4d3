package lab

import (
	"regexp"
	"testing"
)

func TestFeedConsumesPerStream(t *testing.T) {
	f := newFeed()
	f.add(2, "bye")      // stderr, arrived first
	f.add(1, "child 42") // stdout
	f.add(1, "child 43")
	f.add(2, "done")

	for _, want := range []string{"child 42", "bye", "child 43", "done"} {
		got, _, wake, _ := f.match(regexp.MustCompile(`^`+regexp.QuoteMeta(want)+`$`), 0)
		if wake != nil || got != want {
			t.Fatalf("match %q: got %q (matched: %v)", want, got, wake == nil)
		}
	}
	// "child 42" was consumed by its match: no second match.
	if _, next, wake, closed := f.match(regexp.MustCompile(`child`), 0); wake == nil || closed || next != 4 {
		t.Errorf("child matched again, or next %d closed %v", next, closed)
	}
	f.close()
	if _, _, wake, closed := f.match(regexp.MustCompile(`x`), 0); wake == nil || !closed {
		t.Error("closed feed: want no match and closed")
	}
}

func TestFeedSkipsConsumedStreamOnly(t *testing.T) {
	f := newFeed()
	f.add(1, "a")
	f.add(2, "x")
	f.add(1, "b")
	if got, _, _, _ := f.match(regexp.MustCompile(`^b$`), 0); got != "b" {
		t.Fatalf("got %q", got)
	}
	// a (stdout, before b) is gone; x (stderr) is not.
	if _, _, wake, _ := f.match(regexp.MustCompile(`^a$`), 0); wake == nil {
		t.Error("a still there after b was matched")
	}
	if got, _, _, _ := f.match(regexp.MustCompile(`^x$`), 0); got != "x" {
		t.Errorf("x: got %q", got)
	}
}
