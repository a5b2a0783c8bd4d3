package syncproto

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawEqual compares raw JSON as bytes: cmp's element by element
// comparison is slow on big objects.
var rawEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
})

// diff is cmp.Diff with rawEqual.
func diff(want, got any) string { return cmp.Diff(want, got, rawEqual) }

// parallel runs the test in parallel locally and serially in CI.
func parallel(t *testing.T) {
	if os.Getenv("CI") == "" {
		t.Parallel()
	}
}

var t0 = time.Date(2026, 11, 22, 10, 30, 0, 123456789, time.UTC)

// samples holds a valid message of every type, and variants.
func samples() map[string]Message {
	return map[string]Message{
		"hello": &Hello{Site: "fra-1", Credential: "s3cr3t-token", Versions: VersionRange{1, 1},
			AppliedRevision: 41, AckedSeq: 1200, LastSeq: 1250},
		"hello new site": &Hello{Site: "a", Credential: "t", Versions: VersionRange{1, 3}},
		"welcome": &Welcome{Version: 1, StoredSeq: 1210, NextRevision: 42,
			HeartbeatMillis: DefaultHeartbeat.Milliseconds()},
		"desired delta": &Desired{Revision: 42, Changes: []Change{
			{Kind: "image", Key: "ubuntu-24.04", Object: json.RawMessage(`{"name":"ubuntu-24.04","url":"http://x/<img>&"}`)},
			{Kind: "order", Key: "o-17", Object: json.RawMessage(`{"id":"o-17","action":"provision","machine_id":"m1"}`)},
			{Kind: "machine", Key: "m0", Deleted: true},
		}},
		"desired full part": &Desired{Revision: 7, Full: true, Part: 2, More: true, Changes: []Change{
			{Kind: "template", Key: "install", Object: json.RawMessage(`{"name":"install","actions":[]}`)},
		}},
		"desired empty full": &Desired{Revision: 9, Full: true, Changes: []Change{}},
		"desired_ack":        &DesiredAck{Revision: 42},
		"spans": &Spans{Batch: 3, Spans: []json.RawMessage{
			json.RawMessage(`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","name":"dhcp.exchange"}`)}},
		"spans_ack": &SpansAck{Batch: 3},
		"events": &Events{First: 1211, Last: 1213, Events: []Event{
			{Seq: 1211, Data: json.RawMessage(`{"seq":1211,"kind":"order.created","message":"é <ok>"}`)},
			{Seq: 1212, Data: json.RawMessage(`{"seq":1212,"kind":"dhcp.offer","fields":{"ip":"10.0.0.5"}}`)},
			{Seq: 1213, Data: json.RawMessage(`{}`)},
		}},
		"events_ack":          &EventsAck{Seq: 1213},
		"heartbeat":           &Heartbeat{Time: t0},
		"error":               &Error{Code: CodeBadMessage, Message: "events.first: is required", Field: "first"},
		"error without field": &Error{Code: CodeUnavailable, Message: "central is shutting down"},
	}
}

func TestRoundTrip(t *testing.T) {
	parallel(t)
	for name, msg := range samples() {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			frame, err := Encode(msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			var env struct {
				Type string         `json:"type"`
				Body map[string]any `json:"body"`
			}
			if err := json.Unmarshal(frame, &env); err != nil || env.Type != msg.Type() || env.Body == nil {
				t.Fatalf("frame %s: not an envelope of type %s with a body (%v)", frame, msg.Type(), err)
			}
			got, err := Decode(frame)
			if err != nil {
				t.Fatalf("Decode(%s): %v", frame, err)
			}
			if d := diff(msg, got); d != "" {
				t.Errorf("Decode(Encode(m)) differs (-want +got):\n%s", d)
			}
			again, err := Encode(got)
			if err != nil || string(again) != string(frame) {
				t.Errorf("Encode(Decode(frame)) = %s, %v; want %s", again, err, frame)
			}
		})
	}
}

// TestWireForm pins the frame of a message: a change here is a change of
// the protocol.
func TestWireForm(t *testing.T) {
	parallel(t)
	for name, tc := range map[string]struct {
		msg  Message
		want string
	}{
		"hello": {samples()["hello"], `{"type":"hello","body":{"site":"fra-1","versions":{"min":1,"max":1},` +
			`"applied_revision":41,"acked_seq":1200,"last_seq":1250,"credential":"s3cr3t-token"}}`},
		"welcome": {samples()["welcome"], `{"type":"welcome","body":{"version":1,"stored_seq":1210,"next_revision":42,"heartbeat_ms":10000}}`},
		"desired": {&Desired{Revision: 3, Changes: []Change{{Kind: "order", Key: "o1", Object: json.RawMessage(`{ "id" : "o1" }`)}, {Kind: "order", Key: "o0", Deleted: true}}},
			`{"type":"desired","body":{"revision":3,"changes":[{"kind":"order","key":"o1","object":{"id":"o1"}},{"kind":"order","key":"o0","deleted":true}]}}`},
		"desired part": {&Desired{Revision: 3, Full: true, Part: 1, More: true, Changes: []Change{}},
			`{"type":"desired","body":{"revision":3,"full":true,"part":1,"more":true,"changes":[]}}`},
		"desired_ack": {&DesiredAck{Revision: 3}, `{"type":"desired_ack","body":{"revision":3}}`},
		"events": {&Events{First: 5, Last: 5, Events: []Event{{Seq: 5, Data: json.RawMessage(`{"kind":"x"}`)}}},
			`{"type":"events","body":{"first":5,"last":5,"events":[{"seq":5,"data":{"kind":"x"}}]}}`},
		"events_ack": {&EventsAck{Seq: 5}, `{"type":"events_ack","body":{"seq":5}}`},
		"heartbeat":  {&Heartbeat{Time: t0}, `{"type":"heartbeat","body":{"time":"2026-11-22T10:30:00.123456789Z"}}`},
		"error": {Errorf(CodeUnauthorized, "site fra-1: credential refused"),
			`{"type":"error","body":{"code":"unauthorized","message":"site fra-1: credential refused"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			frame, err := Encode(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if string(frame) != tc.want {
				t.Errorf("Encode =\n%s\nwant\n%s", frame, tc.want)
			}
		})
	}
}

// TestUnknownFields: a newer peer's extra fields, anywhere, are ignored.
func TestUnknownFields(t *testing.T) {
	parallel(t)
	for name, tc := range map[string]struct {
		frame string
		want  Message
	}{
		"envelope": {`{"type":"events_ack","v":2,"trace":{"id":"x"},"body":{"seq":9}}`, &EventsAck{Seq: 9}},
		"hello": {`{"type":"hello","body":{"site":"s1","credential":"c","versions":{"min":1,"max":4,"preferred":3},` +
			`"applied_revision":2,"acked_seq":3,"last_seq":4,"features":["zstd"],"node":"n2"}}`,
			&Hello{Site: "s1", Credential: "c", Versions: VersionRange{1, 4}, AppliedRevision: 2, AckedSeq: 3, LastSeq: 4}},
		"welcome": {`{"type":"welcome","body":{"version":1,"stored_seq":0,"next_revision":1,"heartbeat_ms":5000,"region":"eu"}}`,
			&Welcome{Version: 1, NextRevision: 1, HeartbeatMillis: 5000}},
		"desired change": {`{"type":"desired","body":{"revision":1,"changes":[{"kind":"order","key":"o","object":{"id":"o"},"priority":1}],"reason":"x"}}`,
			&Desired{Revision: 1, Changes: []Change{{Kind: "order", Key: "o", Object: json.RawMessage(`{"id":"o"}`)}}}},
		"event": {`{"type":"events","body":{"first":1,"last":1,"events":[{"seq":1,"data":{"a":1},"compressed":false}],"node":"n1"}}`,
			&Events{First: 1, Last: 1, Events: []Event{{Seq: 1, Data: json.RawMessage(`{"a":1}`)}}}},
		"heartbeat": {`{"type":"heartbeat","body":{"time":"2026-11-22T10:30:00.123456789Z","load":0.5}}`, &Heartbeat{Time: t0}},
		"error":     {`{"type":"error","body":{"code":"quota_exceeded","message":"later","retry_after":30}}`, &Error{Code: "quota_exceeded", Message: "later"}},
	} {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			got, err := Decode([]byte(tc.frame))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("Decode (-want +got):\n%s", d)
			}
		})
	}
}

// TestDecodeErrors: frames that are not messages get a bad_message error
// that says what is wrong and quotes no value but the type.
func TestDecodeErrors(t *testing.T) {
	parallel(t)
	for name, tc := range map[string]struct {
		frame, field, want string
	}{
		"unknown type":    {`{"type":"subscribe","body":{}}`, "type", `unknown message type "subscribe"`},
		"no type":         {`{"body":{"seq":1}}`, "type", "type: is required"},
		"not JSON":        {`{"type":"hello",`, "", "malformed JSON"},
		"not an object":   {`["hello"]`, "", "must be a JSON object"},
		"trailing data":   {`{"type":"events_ack","body":{"seq":1}} {}`, "", "malformed JSON"},
		"body not object": {`{"type":"events_ack","body":[1]}`, "", "events_ack: must be a JSON object"},
		"null body":       {`{"type":"events_ack","body":null}`, "seq", "events_ack.seq: is required"},
		"wrong field type": {`{"type":"hello","body":{"site":"s","credential":12345678,"versions":{"min":1,"max":1}}}`,
			"credential", "hello.credential: must be a JSON string"},
		"negative": {`{"type":"desired_ack","body":{"revision":-1}}`, "revision", "must be a JSON non-negative integer"},
	} {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			m, err := Decode([]byte(tc.frame))
			e := checkBadMessage(t, m, err, tc.field)
			if !strings.Contains(e.Message, tc.want) {
				t.Errorf("message %q does not say %q", e.Message, tc.want)
			}
			if strings.Contains(e.Message, "12345678") {
				t.Errorf("message %q quotes the frame", e.Message)
			}
		})
	}
}

// checkBadMessage checks that err is a valid bad_message *Error naming
// field, and returns it.
func checkBadMessage(t *testing.T, m Message, err error, field string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error (got %#v)", m)
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v is a %T, not an *Error", err, err)
	}
	if e.Code != CodeBadMessage || e.Field != field {
		t.Errorf("error %v: code %q field %q, want %q field %q", err, e.Code, e.Field, CodeBadMessage, field)
	}
	if field != "" && !strings.Contains(e.Error(), field) {
		t.Errorf("error %q does not name the field %q", e.Error(), field)
	}
	if err := e.Validate(); err != nil {
		t.Errorf("the error is not a valid error message: %v", err)
	}
	return e
}

func TestFrameLimit(t *testing.T) {
	parallel(t)
	// A valid heartbeat padded past the limit: refused for its size alone.
	frame := `{"type":"heartbeat","body":{"time":"2026-11-22T10:30:00Z"}}`
	padded := frame + strings.Repeat(" ", MaxFrameSize-len(frame)+1)
	m, err := Decode([]byte(padded))
	e := checkBadMessage(t, m, err, "")
	if !strings.Contains(e.Message, "limit") {
		t.Errorf("error %q does not say the limit", e.Message)
	}
	if _, err := Decode([]byte(padded[:MaxFrameSize])); err != nil {
		t.Errorf("a frame of exactly MaxFrameSize bytes: %v", err)
	}

	// Encode refuses to build a frame past the limit.
	big := json.RawMessage(`{"pad":"` + strings.Repeat("x", MaxObjectSize-20) + `"}`)
	d := &Desired{Revision: 1}
	for i := range 5 {
		d.Changes = append(d.Changes, Change{Kind: "template", Key: string(rune('a' + i)), Object: big})
	}
	frameBig, err := Encode(d)
	checkBadMessage(t, nil, err, "")
	if frameBig != nil {
		t.Errorf("Encode returned a frame with its error")
	}
}

func TestEncodeNil(t *testing.T) {
	parallel(t)
	for _, m := range []Message{nil, (*Hello)(nil), (*Error)(nil)} {
		if _, err := Encode(m); CodeOf(err) != CodeBadMessage {
			t.Errorf("Encode(%#v) = %v, want bad_message", m, err)
		}
	}
}
