package raftnode

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/internal/command"
)

func newFSM(t *testing.T) (*fsm, *kv, *int) {
	t.Helper()
	s := openKV(t, filepath.Join(t.TempDir(), "kv.db"))
	t.Cleanup(func() {
		if s.db != nil {
			s.db.Close()
		}
	})
	applied := 0
	return &fsm{a: s, log: slog.New(slog.DiscardHandler), applied: func() { applied++ }}, s, &applied
}

func cmdLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// TestFSMApplyBatch hands the state machine a group of logs: a Batch
// entry's commands each get their own result at the entry's index, a
// configuration change reaches it as an entry with no command (so the
// applied index moves past it), and the node hears of the change once.
func TestFSMApplyBatch(t *testing.T) {
	f, s, applied := newFSM(t)
	batch := command.EncodeBatch([][]byte{set("a", "1"), {byte(cmdRefuse)}, set("b", "2")})
	out := f.ApplyBatch([]*raft.Log{
		cmdLog(1, set("x", "0")),
		cmdLog(2, batch),
		{Index: 3, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{})},
	})
	if len(out) != 3 || out[0] != "0" || out[2] != nil {
		t.Fatalf("results %#v", out)
	}
	br, ok := out[1].(batchResult)
	if !ok || len(br) != 3 || br[0] != "1" || br[1] != errRefused || br[2] != "2" {
		t.Errorf("the batch's results %#v, want 1, the refusal, 2", out[1])
	}
	if v, idx, _ := s.get("b"); v != "2" || idx != 3 {
		t.Errorf("after the group: b=%q, applied index %d; want 2 and 3 (the configuration entry)", v, idx)
	}
	if *applied != 1 {
		t.Errorf("the node was told %d times, want once per group", *applied)
	}
}

// TestFSMMalformedBatch stops the node on a Batch entry that does not
// split (truncated, or a batch in a batch): nothing of the group is
// applied.
func TestFSMMalformedBatch(t *testing.T) {
	for name, data := range map[string][]byte{
		"truncated": append([]byte{byte(command.Batch)}, 9, byte(cmdSet)),
		"nested":    command.EncodeBatch([][]byte{command.EncodeBatch([][]byte{set("a", "1")})}),
	} {
		t.Run(name, func(t *testing.T) {
			f, s, _ := newFSM(t)
			v := func() (v any) {
				defer func() { v = recover() }()
				f.ApplyBatch([]*raft.Log{cmdLog(1, set("x", "0")), cmdLog(2, data)})
				return nil
			}()
			if v == nil || !strings.Contains(v.(string), "log 2") {
				t.Errorf("panic %v, want one naming log 2", v)
			}
			if _, idx, _ := s.get(""); idx != 0 {
				t.Errorf("applied index %d after a refused group, want 0", idx)
			}
		})
	}
}

type memSink struct {
	bytes.Buffer
	fail              bool
	closed, cancelled bool
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.fail {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

type trackedReader struct {
	io.Reader
	closed bool
}

func (r *trackedReader) Close() error { r.closed = true; return nil }

// TestFSMSnapshot persists a snapshot (the sink is closed; cancelled when
// a write fails) and restores it into another state machine, which then
// holds the same state; the reader is closed either way.
func TestFSMSnapshot(t *testing.T) {
	f, _, _ := newFSM(t)
	f.ApplyBatch([]*raft.Log{cmdLog(1, set("a", "1")), cmdLog(2, set("b", "2"))})

	failing := &memSink{fail: true}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(failing); err == nil || !failing.cancelled || failing.closed {
		t.Errorf("persist to a failing sink: err %v, cancelled %v, closed %v; want an error and a cancel", err, failing.cancelled, failing.closed)
	}
	snap.Release()

	sink := &memSink{}
	if snap, err = f.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil || !sink.closed || sink.cancelled {
		t.Fatalf("persist: err %v, closed %v, cancelled %v", err, sink.closed, sink.cancelled)
	}
	snap.Release()

	g, s2, applied := newFSM(t)
	r := &trackedReader{Reader: bytes.NewReader(sink.Bytes())}
	if err := g.Restore(r); err != nil {
		t.Fatal(err)
	}
	if !r.closed {
		t.Error("restore left the snapshot's reader open")
	}
	if v, idx, _ := s2.get("b"); v != "2" || idx != 2 || *applied != 1 {
		t.Errorf("restored: b=%q at index %d, node told %d times; want 2, 2, once", v, idx, *applied)
	}
	bad := &trackedReader{Reader: strings.NewReader("not a bbolt file")}
	if err := g.Restore(bad); err == nil {
		t.Error("restored garbage")
	}
	if !bad.closed {
		t.Error("a failed restore left the reader open")
	}
}
