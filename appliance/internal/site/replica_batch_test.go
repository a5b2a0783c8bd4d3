package site

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

func newTestFSM(t *testing.T) (*FSM, *store.DB) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return NewFSM(db, slog.New(slog.NewTextHandler(t.Output(), nil))), db
}

func putMachineCmd(t *testing.T, id, mac string, expect uint64) []byte {
	t.Helper()
	m := &store.Machine{ID: id, Arch: "x86_64", State: store.StateReady, Interfaces: []store.Interface{{MAC: mac}}}
	cmd, err := Encode(PutMachine, Put[store.Machine]{Object: m, Expect: expect, Time: time.Unix(1700000000, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestBatchEntry applies a Batch entry: each command gets its own result,
// a refused one changes nothing and does not stop the others, and all
// share the entry's index.
func TestBatchEntry(t *testing.T) {
	f, db := newTestFSM(t)
	group := []*proposal{
		{cmd: putMachineCmd(t, "m1", "02:00:00:00:00:01", 0)},
		{cmd: putMachineCmd(t, "m2", "02:00:00:00:00:01", 0)}, // m1's MAC: refused
		{cmd: putMachineCmd(t, "m3", "02:00:00:00:00:03", 0)},
	}
	resp := f.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: encodeBatch(group)})
	res, err := decodeResult(resp)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Batch) != 3 {
		t.Fatalf("batch results: %d, want 3", len(res.Batch))
	}
	if res.Batch[0].Err != nil || res.Batch[2].Err != nil {
		t.Fatalf("unexpected refusals: %+v %+v", res.Batch[0].Err, res.Batch[2].Err)
	}
	if res.Batch[1].Err == nil || res.Batch[1].Err.Code != errs.CodeConflict {
		t.Fatalf("duplicate MAC not refused: %+v", res.Batch[1])
	}
	m3, err := DecodeValue[store.Machine](res.Batch[2])
	if err != nil || m3.Version != 7 {
		t.Fatalf("m3 = %+v, %v; want version 7", m3, err)
	}
	err = db.View(func(tx *store.Tx) error {
		if _, err := store.Get[store.Machine](tx, "m2"); err == nil {
			t.Error("refused m2 was stored")
		}
		if n := store.Count[store.Machine](tx); n != 2 {
			t.Errorf("%d machines, want 2", n)
		}
		if tx.AppliedIndex() != 7 {
			t.Errorf("applied index %d, want 7", tx.AppliedIndex())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBatchMalformedPanics(t *testing.T) {
	f, db := newTestFSM(t)
	tests := map[string][]byte{
		"truncated": append([]byte{byte(Batch)}, 0x20, 'x'),
		"nested":    encodeBatch([]*proposal{{cmd: encodeBatch([]*proposal{{cmd: putMachineCmd(t, "m1", "02:00:00:00:00:01", 0)}})}}),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("malformed batch did not panic")
				}
				if db.AppliedIndex() != 0 {
					t.Fatalf("applied index moved to %d", db.AppliedIndex())
				}
			}()
			f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		})
	}
}

func TestEncodeSplitBatch(t *testing.T) {
	var group []*proposal
	for i := range 300 {
		group = append(group, &proposal{cmd: bytes.Repeat([]byte{byte(i)}, i)})
	}
	data := encodeBatch(group)
	cmds := splitBatch(data[1:], 1)
	if len(cmds) != len(group) {
		t.Fatalf("split %d commands, want %d", len(cmds), len(group))
	}
	for i := range group {
		if !bytes.Equal(cmds[i], group[i].cmd) {
			t.Fatalf("command %d differs", i)
		}
	}
}

// TestGroupCommit runs many concurrent writers through a real one-node
// Raft and checks that every write committed, with fewer log entries than
// writes (they were grouped).
func TestGroupCommit(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n, err := Open(Config{
		ID: "n1", Dir: filepath.Join(t.TempDir(), "raft"), BindAddr: freeAddr(t),
		APIURL: "http://127.0.0.1:1", Bootstrap: true,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for !n.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	const writers, each = 32, 20
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				_, err := n.Apply(t.Context(), putMachineCmd(t, fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("02:00:00:00:%02x:%02x", w, i), 0))
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var count int
	db.View(func(tx *store.Tx) error { count = store.Count[store.Machine](tx); return nil })
	if count != writers*each {
		t.Fatalf("%d machines stored, want %d", count, writers*each)
	}
	if last := n.raft.LastIndex(); last >= writers*each {
		t.Errorf("last log index %d: %d writes were not grouped", last, writers*each)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
