package site

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
)

// Decoding ahead. The state machine applies a group of entries in one
// transaction on one goroutine (Raft's), and a machine put's JSON decode
// is about a third of its apply: the part of the apply that reads
// nothing but the command. For the commands in aheadTable, a helper
// goroutine decodes a group's payloads from its end backwards while the
// state machine applies from its start, decoding what the helper has not
// claimed yet itself; when it reaches an entry the helper claimed, every
// later entry is the helper's too, and it waits for the helper once.
// Decoding is the same function of the same bytes on either goroutine,
// and a payload that does not decode stops the node when its entry is
// applied, in log order, as MustDecode does: the apply is as
// deterministic as before.

// aheadFunc decodes a command's payload; it is the first half of an apply
// function whose second half takes the decoded value.
type aheadFunc struct {
	decode func(payload []byte) (any, error)
	apply  func(tx *store.Tx, req any, index uint64) (any, error)
}

// aheadTable holds the commands decoded ahead: the puts a client makes in
// bulk. Every other command is applied by table, decoding in turn.
var aheadTable = map[command.Type]aheadFunc{
	PutMachineV2: {decodePut[store.Machine], func(tx *store.Tx, req any, index uint64) (any, error) {
		return putMachineReq(tx, req.(*Put[store.Machine]), index, true)
	}},
	PutMachine: {decodePut[store.Machine], func(tx *store.Tx, req any, index uint64) (any, error) {
		return putMachineReq(tx, req.(*Put[store.Machine]), index, false)
	}},
}

func decodePut[T any](payload []byte) (any, error) {
	req := new(Put[T])
	if err := json.Unmarshal(payload, req); err != nil {
		return nil, err
	}
	return req, nil
}

// minAhead is the smallest group worth a helper goroutine.
const minAhead = 4

// Claims on an entry's decode.
const (
	unclaimed int32 = iota
	byApplier
	byHelper
)

// ahead is the decoding of one group's entries.
type ahead struct {
	entries []command.Entry
	claims  []atomic.Int32
	reqs    []any
	errs    []error
	helper  sync.WaitGroup
}

// decodeAhead starts decoding the entries of aheadTable's commands that
// are past applied, or returns nil when there are too few to be worth it.
func decodeAhead(entries []command.Entry, applied uint64) *ahead {
	n := 0
	for _, e := range entries {
		if _, ok := aheadOf(e.Data); ok && e.Index > applied {
			n++
		}
	}
	if n < minAhead {
		return nil
	}
	a := &ahead{entries: entries, claims: make([]atomic.Int32, len(entries)), reqs: make([]any, len(entries)), errs: make([]error, len(entries))}
	a.helper.Add(1)
	go a.decodeFromEnd(applied)
	return a
}

// aheadOf is the aheadTable entry of cmd's type, if it has one.
func aheadOf(cmd []byte) (aheadFunc, bool) {
	t, _ := command.Split(cmd)
	f, ok := aheadTable[t]
	return f, ok
}

// decodeFromEnd decodes entries from the last backwards until it meets
// one the applier claimed.
func (a *ahead) decodeFromEnd(applied uint64) {
	defer a.helper.Done()
	for i := len(a.entries) - 1; i >= 0; i-- {
		if !a.claims[i].CompareAndSwap(unclaimed, byHelper) {
			return
		}
		if e := a.entries[i]; e.Index > applied {
			a.decode(i)
		}
	}
}

func (a *ahead) decode(i int) {
	f, ok := aheadOf(a.entries[i].Data)
	if !ok {
		return
	}
	_, payload := command.Split(a.entries[i].Data)
	a.reqs[i], a.errs[i] = f.decode(payload)
}

// apply applies entry i, which is past the applied index, with its
// decoded payload if it is one of aheadTable's commands (ok false when
// it is not).
func (a *ahead) apply(tx *store.Tx, i int) (obj any, ok bool, err error) {
	if a == nil {
		return nil, false, nil
	}
	f, ok := aheadOf(a.entries[i].Data)
	if !ok {
		return nil, false, nil
	}
	if a.claims[i].CompareAndSwap(unclaimed, byApplier) {
		a.decode(i)
	} else {
		a.helper.Wait()
	}
	if a.errs[i] != nil {
		panic(fmt.Sprintf("command: decode command at index %d: %v", a.entries[i].Index, a.errs[i]))
	}
	obj, err = f.apply(tx, a.reqs[i], a.entries[i].Index)
	return obj, true, err
}

// wait waits for the helper, which is done once every entry is applied,
// but not when an apply failed part way.
func (a *ahead) wait() {
	if a != nil {
		a.helper.Wait()
	}
}
