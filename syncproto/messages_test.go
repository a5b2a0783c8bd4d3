package syncproto

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// rawFrame is msg's frame without validation: what a buggy peer sends.
func rawFrame(t *testing.T, msg Message) []byte {
	t.Helper()
	var body any = msg
	if h, ok := msg.(*Hello); ok {
		body = helloWire{h, string(h.Credential)}
	}
	frame, err := marshal(envelope{Type: msg.Type(), Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func events(first uint64, n int) []Event {
	var out []Event
	for i := range n {
		out = append(out, Event{Seq: first + uint64(i), Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
	}
	return out
}

func obj(s string) json.RawMessage { return json.RawMessage(s) }

// TestValidate: every rule a message breaks is refused by Encode and by
// Decode with a bad_message error naming the field.
func TestValidate(t *testing.T) {
	parallel(t)
	hello := func(f func(*Hello)) *Hello {
		h := &Hello{Site: "s1", Credential: "tok", Versions: VersionRange{1, 1}, AckedSeq: 1, LastSeq: 2}
		f(h)
		return h
	}
	welcome := func(f func(*Welcome)) *Welcome {
		w := &Welcome{Version: 1, NextRevision: 1, HeartbeatMillis: 1000}
		f(w)
		return w
	}
	put := func(kind, key string) Change { return Change{Kind: kind, Key: key, Object: obj(`{}`)} }
	desired := func(c ...Change) *Desired { return &Desired{Revision: 1, Changes: c} }
	batch := func(f func(*Events)) *Events {
		b := &Events{First: 3, Last: 5, Events: events(3, 3)}
		f(b)
		return b
	}
	for name, tc := range map[string]struct {
		msg   Message
		field string
		want  string
	}{
		"hello no site":          {hello(func(h *Hello) { h.Site = "" }), "site", "is required"},
		"hello site upper case":  {hello(func(h *Hello) { h.Site = "Fra1" }), "site", "lowercase"},
		"hello site too long":    {hello(func(h *Hello) { h.Site = strings.Repeat("a", 64) }), "site", "1-63"},
		"hello site starts dash": {hello(func(h *Hello) { h.Site = "-a" }), "site", "starting with"},
		"hello no credential":    {hello(func(h *Hello) { h.Credential = "" }), "credential", "is required"},
		"hello long credential": {hello(func(h *Hello) { h.Credential = Credential(strings.Repeat("k", MaxCredentialSize+1)) }),
			"credential", "limit"},
		"hello no versions":     {hello(func(h *Hello) { h.Versions = VersionRange{} }), "versions.min", "at least 1"},
		"hello versions upside": {hello(func(h *Hello) { h.Versions = VersionRange{3, 2} }), "versions.max", "below min"},
		"hello acked past last": {hello(func(h *Hello) { h.AckedSeq = 3 }), "acked_seq", "past last_seq"},

		"welcome no version":        {welcome(func(w *Welcome) { w.Version = 0 }), "version", "at least 1"},
		"welcome no next revision":  {welcome(func(w *Welcome) { w.NextRevision = 0 }), "next_revision", "is required"},
		"welcome no heartbeat":      {welcome(func(w *Welcome) { w.HeartbeatMillis = 0 }), "heartbeat_ms", "want 100 to 300000"},
		"welcome heartbeat too big": {welcome(func(w *Welcome) { w.HeartbeatMillis = math.MaxInt64 }), "heartbeat_ms", "want"},

		"desired no revision": {&Desired{}, "revision", "is required"},
		"desired part < 0":    {&Desired{Revision: 1, Part: -1}, "part", "at least 0"},
		"change no kind":      {desired(put("", "k")), "changes[0].kind", "is required"},
		"change bad kind":     {desired(put("order", "a"), put("Order", "k")), "changes[1].kind", "lowercase"},
		"change no key":       {desired(put("order", "")), "changes[0].key", "is required"},
		"change control key":  {desired(put("order", "a\nb")), "changes[0].key", "control character"},
		"change long key":     {desired(put("order", strings.Repeat("k", MaxKeySize+1))), "changes[0].key", "limit"},
		"put no object":       {desired(Change{Kind: "order", Key: "o"}), "changes[0].object", "is required unless deleted"},
		"put array":           {desired(Change{Kind: "order", Key: "o", Object: obj(`[1]`)}), "changes[0].object", "must be a JSON object"},
		"put string":          {desired(Change{Kind: "order", Key: "o", Object: obj(`"x"`)}), "changes[0].object", "must be a JSON object"},
		"put too big": {desired(Change{Kind: "order", Key: "o", Object: obj(`{"x":"` + strings.Repeat("x", MaxObjectSize) + `"}`)}),
			"changes[0].object", "limit"},
		"delete with object": {desired(Change{Kind: "order", Key: "o", Deleted: true, Object: obj(`{}`)}), "changes[0].object", "a delete has no object"},
		"full with delete": {&Desired{Revision: 2, Full: true, Changes: []Change{put("order", "a"), {Kind: "order", Key: "b", Deleted: true}}},
			"changes[1].deleted", "a full snapshot has no deletes"},
		"named twice": {desired(put("order", "a"), put("machine", "a"), Change{Kind: "order", Key: "a", Deleted: true}),
			"changes[2].key", `order "a" is named twice`},

		"desired_ack no revision": {&DesiredAck{}, "revision", "is required"},

		"events empty":         {&Events{First: 1, Last: 1}, "events", "is empty"},
		"events too many":      {&Events{First: 1, Last: MaxEventsPerBatch + 1, Events: events(1, MaxEventsPerBatch+1)}, "events", "limit of 1000"},
		"events no first":      {batch(func(b *Events) { b.First = 0 }), "first", "is required"},
		"events not dense":     {batch(func(b *Events) { b.Events[1].Seq = 5; b.Events[2].Seq = 6; b.Last = 6 }), "events[1].seq", "is 5, want 4"},
		"events decreasing":    {batch(func(b *Events) { b.Events[2].Seq = 2 }), "events[2].seq", "is 2, want 5"},
		"events first differs": {batch(func(b *Events) { b.First = 2 }), "events[0].seq", "is 3, want 2"},
		"events wrong last":    {batch(func(b *Events) { b.Last = 9 }), "last", "is 9, want 5"},
		"events overflow": {&Events{First: math.MaxUint64, Last: 0, Events: []Event{{Seq: math.MaxUint64, Data: obj(`{}`)}, {Seq: 0, Data: obj(`{}`)}}},
			"first", "overflow"},
		"event no data":      {batch(func(b *Events) { b.Events[1].Data = nil }), "events[1].data", "is required"},
		"event data number":  {batch(func(b *Events) { b.Events[0].Data = obj(`42`) }), "events[0].data", "must be a JSON object"},
		"event data too big": {batch(func(b *Events) { b.Events[2].Data = obj(`{"x":"` + strings.Repeat("x", MaxEventSize) + `"}`) }), "events[2].data", "limit"},

		"events_ack no seq": {&EventsAck{}, "seq", "is required"},

		"spans no batch":     {&Spans{Spans: []json.RawMessage{obj(`{}`)}}, "batch", "is required"},
		"spans empty":        {&Spans{Batch: 1}, "spans", "is empty"},
		"spans too many":     {&Spans{Batch: 1, Spans: make([]json.RawMessage, MaxSpansPerBatch+1)}, "spans", "limit of 1000"},
		"span not an object": {&Spans{Batch: 1, Spans: []json.RawMessage{obj(`{}`), obj(`[1]`)}}, "spans[1]", "must be a JSON object"},
		"span too big":       {&Spans{Batch: 1, Spans: []json.RawMessage{obj(`{"x":"` + strings.Repeat("x", MaxSpanSize) + `"}`)}}, "spans[0]", "limit"},
		"spans_ack no batch": {&SpansAck{}, "batch", "is required"},
		"heartbeat no time":  {&Heartbeat{}, "time", "is required"},

		"error no code":      {&Error{Message: "m"}, "code", "is required"},
		"error bad code":     {&Error{Code: "Bad Code", Message: "m"}, "code", "lowercase"},
		"error no message":   {&Error{Code: CodeInternal}, "message", "is required"},
		"error long message": {&Error{Code: CodeInternal, Message: strings.Repeat("m", MaxErrorMessage+1)}, "message", "limit"},
	} {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			frame, err := Encode(tc.msg)
			e := checkBadMessage(t, nil, err, tc.field)
			if !strings.Contains(e.Message, tc.want) {
				t.Errorf("Encode: message %q does not say %q", e.Message, tc.want)
			}
			if frame != nil {
				t.Errorf("Encode returned a frame with its error")
			}
			m, err := Decode(rawFrame(t, tc.msg))
			e = checkBadMessage(t, m, err, tc.field)
			if !strings.Contains(e.Message, tc.want) {
				t.Errorf("Decode: message %q does not say %q", e.Message, tc.want)
			}
		})
	}
}

func TestWelcomeAnswers(t *testing.T) {
	parallel(t)
	h := &Hello{Site: "s1", Credential: "c", Versions: VersionRange{1, 2}, AppliedRevision: 10, AckedSeq: 5, LastSeq: 20}
	for name, tc := range map[string]struct {
		w     Welcome
		field string
	}{
		"deltas":            {Welcome{Version: 2, StoredSeq: 20, NextRevision: 11}, ""},
		"snapshot":          {Welcome{Version: 1, StoredSeq: 3, NextRevision: 30}, ""},
		"version not asked": {Welcome{Version: 3, NextRevision: 11}, "version"},
		"revision applied":  {Welcome{Version: 1, NextRevision: 10}, "next_revision"},
		"stored too much":   {Welcome{Version: 1, StoredSeq: 21, NextRevision: 11}, "stored_seq"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.w.Answers(h)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkBadMessage(t, nil, err, tc.field)
		})
	}
}

func TestCheckHistory(t *testing.T) {
	parallel(t)
	h := &Hello{Site: "fra-1", LastSeq: 120}
	for _, stored := range []uint64{0, 100, 120} {
		if err := h.CheckHistory(stored); err != nil {
			t.Errorf("CheckHistory(%d): %v", stored, err)
		}
	}
	err := h.CheckHistory(500)
	if CodeOf(err) != CodeConflict {
		t.Fatalf("CheckHistory(500) = %v, want a conflict", err)
	}
	for _, s := range []string{"fra-1", "120", "500", "reset"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
}

func TestHeartbeatInterval(t *testing.T) {
	parallel(t)
	w := &Welcome{HeartbeatMillis: 2500}
	if got := w.HeartbeatInterval(); got != 2500*time.Millisecond {
		t.Errorf("HeartbeatInterval = %v", got)
	}
}

func TestErrorFor(t *testing.T) {
	parallel(t)
	inner := Errorf(CodeUnauthorized, "credential refused")
	for name, tc := range map[string]struct {
		err  error
		want *Error
	}{
		"nil":     {nil, nil},
		"wrapped": {fmt.Errorf("hub: site s1: %w", inner), inner},
		"other":   {fmt.Errorf("open /var/lib/central/db: permission denied"), &Error{Code: CodeInternal, Message: "internal error"}},
		"invalid": {&Error{Code: "", Message: "x"}, &Error{Code: CodeInternal, Message: "internal error"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := ErrorFor(tc.err)
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("ErrorFor(%v) = %#v, want %#v", tc.err, got, tc.want)
			}
		})
	}
	long := Errorf(CodeInternal, "%s", strings.Repeat("é", MaxErrorMessage))
	if err := long.Validate(); err != nil {
		t.Errorf("Errorf does not cut a long message: %v", err)
	}
}
