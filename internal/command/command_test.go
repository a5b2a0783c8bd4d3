package command

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBatchRoundTrip(t *testing.T) {
	cmds := [][]byte{{1, 'a'}, {2}, bytes.Repeat([]byte{3}, 300)}
	b := EncodeBatch(cmds)
	typ, payload := Split(b)
	if typ != Batch {
		t.Fatalf("type %d, want Batch", typ)
	}
	got, err := SplitBatch(payload)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cmds, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}

func TestSplitBatchRefuses(t *testing.T) {
	for name, payload := range map[string][]byte{
		"truncated length": {0x80},
		"short command":    {5, 1, 2},
		"nested batch":     EncodeBatch([][]byte{EncodeBatch([][]byte{{1}})})[1:],
	} {
		if _, err := SplitBatch(payload); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTableApply(t *testing.T) {
	table := Table[*[]string]{
		1: func(log *[]string, p []byte, index uint64) (any, error) {
			*log = append(*log, fmt.Sprintf("%s@%d", p, index))
			return len(*log), nil
		},
	}
	var log []string
	if r, skipped, err := table.Apply(&log, append([]byte{1}, "x"...), 7); r != 1 || skipped || err != nil {
		t.Errorf("known type: %v %v %v", r, skipped, err)
	}
	if r, skipped, err := table.Apply(&log, []byte{byte(Noop)}, 8); r != nil || skipped || err != nil {
		t.Errorf("noop: %v %v %v", r, skipped, err)
	}
	if _, skipped, err := table.Apply(&log, []byte{byte(9 | IgnoreUnknown)}, 9); !skipped || err != nil {
		t.Errorf("an unknown ignorable type: skipped %v, err %v", skipped, err)
	}
	if diff := cmp.Diff([]string{"x@7"}, log); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	defer func() {
		err, _ := recover().(error)
		if !errors.Is(err, ErrUnknown) {
			t.Errorf("an unknown type panicked with %v, want ErrUnknown", err)
		}
	}()
	table.Apply(&log, []byte{9}, 10)
	t.Error("an unknown type was applied")
}

func FuzzSplitBatch(f *testing.F) {
	f.Add(EncodeBatch([][]byte{{1, 2}, {3}}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		cmds, err := SplitBatch(payload)
		if err != nil {
			return
		}
		again, err := SplitBatch(EncodeBatch(cmds)[1:])
		if err != nil || !cmp.Equal(cmds, again, cmp.Comparer(bytes.Equal)) {
			t.Errorf("%x: split %x, re-encoded and split %x, %v", payload, cmds, again, err)
		}
	})
}
