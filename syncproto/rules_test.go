package syncproto

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestCheckSender(t *testing.T) {
	parallel(t)
	for name, m := range samples() {
		for _, from := range []Sender{Site, Central} {
			err := CheckSender(m, from)
			var want bool
			switch m.Type() {
			case TypeHello, TypeDesiredAck, TypeEvents, TypeSpans:
				want = from == Site
			case TypeWelcome, TypeDesired, TypeEventsAck, TypeSpansAck:
				want = from == Central
			default:
				want = true
			}
			if (err == nil) != want {
				t.Errorf("CheckSender(%s, %s) = %v, want allowed=%t", name, from, err, want)
			}
			if err != nil && (CodeOf(err) != CodeBadMessage || !strings.Contains(err.Error(), "the "+from.String()+" does not send "+m.Type())) {
				t.Errorf("CheckSender(%s, %s) = %v", name, from, err)
			}
		}
	}
}

func TestSplitEvents(t *testing.T) {
	parallel(t)
	big := func(first uint64, n int) []Event {
		var out []Event
		for i := range n {
			out = append(out, Event{Seq: first + uint64(i), Data: json.RawMessage(`{"pad":"` + strings.Repeat("x", MaxEventSize-20) + `"}`)})
		}
		return out
	}
	for name, tc := range map[string]struct {
		events []Event
		sizes  []int // events per batch
	}{
		"none":                 {nil, nil},
		"one":                  {events(7, 1), []int{1}},
		"one full batch":       {events(1, MaxEventsPerBatch), []int{MaxEventsPerBatch}},
		"count limit":          {events(1, 2*MaxEventsPerBatch+5), []int{MaxEventsPerBatch, MaxEventsPerBatch, 5}},
		"size limit":           {big(100, 70), []int{63, 7}},
		"size limit then more": {append(big(1, 64), events(65, 2)...), []int{63, 3}},
	} {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			batches, err := SplitEvents(tc.events)
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			var all []Event
			for _, b := range batches {
				sizes = append(sizes, len(b.Events))
				all = append(all, b.Events...)
				frame, err := Encode(b)
				if err != nil {
					t.Fatalf("batch %d-%d: %v", b.First, b.Last, err)
				}
				if len(frame) > MaxFrameSize {
					t.Fatalf("batch %d-%d is %d bytes", b.First, b.Last, len(frame))
				}
			}
			if d := diff(tc.sizes, sizes); d != "" {
				t.Errorf("batch sizes (-want +got):\n%s", d)
			}
			if d := diff(tc.events, all); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
		})
	}
	gap := append(events(1, 3), events(5, 1)...)
	_, err := SplitEvents(gap)
	checkBadMessage(t, nil, err, "events[3].seq")
	_, err = SplitEvents([]Event{{Seq: 1, Data: json.RawMessage(`[]`)}})
	checkBadMessage(t, nil, err, "events[0].data")
}

func TestUnstored(t *testing.T) {
	parallel(t)
	b := &Events{First: 5, Last: 8, Events: events(5, 4)}
	for name, tc := range map[string]struct {
		stored uint64
		want   []uint64
		gap    bool
	}{
		"next":         {stored: 4, want: []uint64{5, 6, 7, 8}},
		"overlap":      {stored: 6, want: []uint64{7, 8}},
		"all but last": {stored: 7, want: []uint64{8}},
		"all stored":   {stored: 8},
		"stored more":  {stored: 100},
		"gap":          {stored: 3, gap: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := b.Unstored(tc.stored)
			if tc.gap {
				e := checkBadMessage(t, nil, err, "first")
				if !strings.Contains(e.Message, "events 4 to 4 are missing") {
					t.Errorf("%q does not say which events are missing", e.Message)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if d := diff(tc.want, seqs); d != "" {
				t.Errorf("Unstored(%d) (-want +got):\n%s", tc.stored, d)
			}
		})
	}
}

func TestSplitDesired(t *testing.T) {
	parallel(t)
	big := json.RawMessage(`{"pad":"` + strings.Repeat("x", MaxObjectSize-20) + `"}`)
	var changes []Change
	for i := range 9 {
		changes = append(changes, Change{Kind: "template", Key: fmt.Sprintf("t%d", i), Object: big})
	}
	changes = append(changes, Change{Kind: "order", Key: "o1", Object: json.RawMessage(`{"id":"o1"}`)})
	parts, err := SplitDesired(12, true, changes)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	var all []Change
	r := NewDesiredReceiver(3)
	for i, d := range parts {
		frame, err := Encode(d)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if len(frame) > MaxFrameSize {
			t.Fatalf("part %d is %d bytes", i, len(frame))
		}
		if d.Revision != 12 || !d.Full || d.Part != i || d.More != (i < len(parts)-1) {
			t.Errorf("part %d: revision %d full %t part %d more %t", i, d.Revision, d.Full, d.Part, d.More)
		}
		complete, err := r.Accept(d)
		if err != nil || complete != !d.More {
			t.Fatalf("Accept part %d = %t, %v", i, complete, err)
		}
		all = append(all, d.Changes...)
	}
	if d := diff(changes, all); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
	if r.Applied() != 12 {
		t.Errorf("Applied = %d, want 12", r.Applied())
	}

	empty, err := SplitDesired(4, false, nil)
	if err != nil || len(empty) != 1 || empty[0].More || empty[0].Changes == nil {
		t.Errorf("SplitDesired of no changes = %+v, %v; want one message", empty, err)
	}
	_, err = SplitDesired(4, true, []Change{{Kind: "order", Key: "o", Deleted: true}})
	checkBadMessage(t, nil, err, "changes[0].deleted")
	twice := []Change{{Kind: "template", Key: "t0", Object: big}}
	_, err = SplitDesired(4, false, append(changes, twice...))
	checkBadMessage(t, nil, err, "changes[10].key")
}

func TestDesiredReceiver(t *testing.T) {
	parallel(t)
	d := func(rev uint64, full bool, part int, more bool) *Desired {
		return &Desired{Revision: rev, Full: full, Part: part, More: more}
	}
	type step struct {
		d        *Desired
		complete bool
		field    string // of the error, "" if none
	}
	for name, tc := range map[string]struct {
		applied uint64
		steps   []step
		want    uint64 // applied at the end
	}{
		"deltas":               {5, []step{{d(6, false, 0, false), true, ""}, {d(7, false, 0, false), true, ""}}, 7},
		"first revision":       {0, []step{{d(1, false, 0, false), true, ""}}, 1},
		"parts":                {5, []step{{d(6, false, 0, true), false, ""}, {d(6, false, 1, true), false, ""}, {d(6, false, 2, false), true, ""}}, 6},
		"snapshot jumps ahead": {5, []step{{d(40, true, 0, false), true, ""}, {d(41, false, 0, false), true, ""}}, 41},
		"delta skips":          {5, []step{{d(7, false, 0, false), false, "revision"}}, 5},
		"delta again":          {5, []step{{d(5, false, 0, false), false, "revision"}}, 5},
		"snapshot behind":      {5, []step{{d(5, true, 0, false), false, "revision"}}, 5},
		"starts mid revision":  {5, []step{{d(6, false, 1, false), false, "part"}}, 5},
		"part skipped":         {5, []step{{d(6, false, 0, true), false, ""}, {d(6, false, 2, false), false, "part"}}, 5},
		"interleaved":          {5, []step{{d(6, false, 0, true), false, ""}, {d(7, false, 0, false), false, "revision"}}, 5},
		"full flag changes":    {5, []step{{d(6, true, 0, true), false, ""}, {d(6, false, 1, false), false, "full"}}, 5},
	} {
		t.Run(name, func(t *testing.T) {
			r := NewDesiredReceiver(tc.applied)
			for i, s := range tc.steps {
				complete, err := r.Accept(s.d)
				if s.field != "" {
					checkBadMessage(t, nil, err, s.field)
					break
				}
				if err != nil || complete != s.complete {
					t.Fatalf("step %d: Accept = %t, %v; want %t", i, complete, err, s.complete)
				}
			}
			if r.Applied() != tc.want {
				t.Errorf("Applied = %d, want %d", r.Applied(), tc.want)
			}
		})
	}
}
