package syncproto

import (
	"errors"
	"testing"
)

// FuzzDecode: Decode never panics and fails only with a bad_message
// error; whatever decodes encodes again, and that frame decodes to the
// same message and encodes to the same frame.
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		frame, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `{"type":"hello"}`, `{"type":"hello","body":null}`,
		`{"type":"desired","body":{"revision":1,"changes":[{"kind":"order","key":"k","object":null,"deleted":true}]}}`,
		`{"type":"desired","body":{"revision":1,"changes":[{"kind":"order","key":"k","object":{ "a" : [1, 2.5e10, "\u003c\u2028"] }}]}}`,
		`{"type":"events","body":{"first":18446744073709551615,"last":18446744073709551615,"events":[{"seq":18446744073709551615,"data":{}}]}}`,
		`{"type":"heartbeat","body":{"time":"2026-11-22T10:30:00.1234567891+05:30"}}`,
		`{"TYPE":"events_ack","Body":{"SEQ":3}}`,
		`{"type":"error","body":{"code":"x","message":"\xff\xfe"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Decode(frame)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeBadMessage || e.Validate() != nil {
				t.Fatalf("Decode error %v is not a valid bad_message *Error", err)
			}
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(Decode(%q)) = %v", frame, err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode(%s) = %v", again, err)
		}
		if d := diff(m, m2); d != "" {
			t.Fatalf("Decode(Encode(m)) differs from m (-m +again):\n%s", d)
		}
		if third, err := Encode(m2); err != nil || string(third) != string(again) {
			t.Fatalf("Encode is not stable: %s then %s (%v)", again, third, err)
		}
	})
}
