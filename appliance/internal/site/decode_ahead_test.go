package site

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
)

// aheadGroup is a group of entries with machine puts of both command
// types (new machines, updates, a MAC taken, a version conflict) between
// other commands, entries without a command and index gaps.
func aheadGroup(t *testing.T, n int) []command.Entry {
	t.Helper()
	var entries []command.Entry
	index := uint64(10)
	for i := range n {
		id := fmt.Sprintf("m%03d", i%(n/2+1)) // the second half updates the first
		mac := fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
		var en command.Entry
		switch i % 7 {
		case 0:
			en = cmdEntry(t, index, AppendEvents, Events{Time: ts0, Events: []store.Event{{Kind: "tick", Message: fmt.Sprint(i)}}})
		case 1:
			en = cmdEntry(t, index, PutMachine, Put[store.Machine]{Object: fxMachine(id, mac), Time: ts0, By: "ops"})
		case 2:
			en = command.Entry{Index: index} // a configuration change
		case 3:
			en = cmdEntry(t, index, PutMachineV2, Put[store.Machine]{Object: fxMachine(id, "02:00:00:00:00:00"), Time: ts1, By: "ops"}) // often taken
		case 4:
			en = cmdEntry(t, index, PutMachineV2, Put[store.Machine]{Object: fxMachine(id, mac), Expect: 3, Time: ts1}) // a version conflict
		default:
			en = cmdEntry(t, index, PutMachineV2, Put[store.Machine]{Object: fxMachine(id, mac), Time: ts1, By: "api"})
		}
		entries = append(entries, en)
		index += 1 + uint64(i%2)
	}
	return entries
}

// TestDecodeAheadSameStore: a group applied in one call, its machine puts
// decoded ahead by the helper, leaves the same bytes in the store and
// gives the same results as its entries applied one at a time (decoded
// in turn), for groups of every size around the helper's threshold, and
// when part of the group is a replay.
func TestDecodeAheadSameStore(t *testing.T) {
	for _, n := range []int{1, minAhead - 1, minAhead, minAhead + 1, 16, 64, 300} {
		for _, replayed := range []int{0, n / 3} {
			t.Run(fmt.Sprintf("n=%d/replayed=%d", n, replayed), func(t *testing.T) {
				entries := aheadGroup(t, n)
				one, each := newEnv(t), newEnv(t)
				if replayed > 0 {
					one.applyAll(entries[:replayed]...)
				}
				got := one.applyAll(entries...)
				var want []Result
				for _, en := range entries {
					want = append(want, each.apply(en))
				}
				opts := cmp.Comparer(func(a, b Result) bool {
					return a.Index == b.Index && cmp.Equal(a.Err, b.Err) && cmp.Equal(a.Object, b.Object)
				})
				if replayed == 0 {
					if diff := cmp.Diff(want, got, opts); diff != "" {
						t.Errorf("results (-one at a time +in one group):\n%s", diff)
					}
				}
				if diff := cmp.Diff(rawDump(t, each.db), rawDump(t, one.db)); diff != "" {
					t.Errorf("store (-one at a time +in one group):\n%s", diff)
				}
			})
		}
	}
}

// TestDecodeAheadBadPayload: a machine put that does not decode stops the
// node when its turn comes, wherever it is in a group the helper decodes,
// and the group changes nothing.
func TestDecodeAheadBadPayload(t *testing.T) {
	for _, at := range []int{0, 1, 7, 15} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			e := newEnv(t)
			var entries []command.Entry
			for i := range 16 {
				en := cmdEntry(t, uint64(10+i), PutMachineV2, Put[store.Machine]{Object: fxMachine(fmt.Sprintf("m%d", i), fmt.Sprintf("02:00:00:00:00:%02x", i)), Time: ts0})
				if i == at {
					en.Data = []byte(string(rune(PutMachineV2)) + `{"object":"a string"}`)
				}
				entries = append(entries, en)
			}
			before := rawDump(t, e.db)
			msg := panicText(mustPanic(t, func() { e.sm.Apply(entries) }))
			if want := fmt.Sprintf("decode command at index %d", 10+at); !strings.Contains(msg, want) {
				t.Errorf("panic %q does not say %q", msg, want)
			}
			if diff := cmp.Diff(before, rawDump(t, e.db)); diff != "" {
				t.Errorf("a group that panicked changed the store (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMACList: macList writes what jsonList writes, by hand or not.
func TestMACList(t *testing.T) {
	for _, macs := range [][]string{
		nil, {}, {"02:00:00:00:00:01"}, {"02:00:00:00:00:01", "aa:bb:cc:dd:ee:ff"},
		{"02-00-00-00-00-01"}, {"02:00:00:00:00:01", "AA:BB:CC:DD:EE:FF"}, {"<script>"}, {"02:00:00:00:00:0g"},
	} {
		if got, want := macList(macs), jsonList(macs); got != want {
			t.Errorf("macList(%q) = %s, want %s", macs, got, want)
		}
	}
}
