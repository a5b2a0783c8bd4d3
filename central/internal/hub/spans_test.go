package hub

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

func rawSpans(t *testing.T, spans []tracing.Span) []json.RawMessage {
	t.Helper()
	out := make([]json.RawMessage, len(spans))
	for i := range spans {
		raw, err := json.Marshal(&spans[i])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = raw
	}
	return out
}

// On a version-2 session a site's spans are kept (their site forced to
// the session's) and acknowledged; spans sent again after a reconnect
// (a WAN outage: the acknowledgement lost) are kept once, and the late
// ones join their trace.
func TestSpans(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("fra-1")
	spans := centraltest.ProvisionTrace(traceID, time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	site := spans[1:] // central's order.place is central's own
	site[0].Attrs = map[string]string{tracing.AttrSite: "ams-9"}
	if _, err := f.db.AddSpans(spans[:1]); err != nil {
		t.Fatal(err)
	}
	c, w := f.connect(hello("fra-1", cred, 0, 0, 0))
	if w.Version < 2 {
		t.Fatalf("welcome version %d, want 2", w.Version)
	}
	c.send(&syncproto.Spans{Batch: 1, Spans: rawSpans(t, site[:5])})
	if ack, ok := c.recv().(*syncproto.SpansAck); !ok || ack.Batch != 1 {
		t.Fatalf("answer to spans: %#v, want spans_ack 1", ack)
	}
	c.conn.CloseNow()

	// After the outage: batch 1 again (its ack was lost), and the rest.
	c, _ = f.connect(hello("fra-1", cred, 0, 0, 0))
	c.send(&syncproto.Spans{Batch: 1, Spans: rawSpans(t, site[:5])})
	c.send(&syncproto.Spans{Batch: 2, Spans: rawSpans(t, site[5:])})
	for want := uint64(1); want <= 2; want++ {
		if ack, ok := c.recv().(*syncproto.SpansAck); !ok || ack.Batch != want {
			t.Fatalf("answer %d: %#v, want spans_ack %d", want, ack, want)
		}
	}
	got, err := f.db.Trace(traceID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(spans) || !tracing.Check(got).Complete {
		t.Fatalf("trace: %d spans (%+v), want %d, complete", len(got), tracing.Check(got), len(spans))
	}
	for _, s := range got[1:] {
		if s.Attrs[tracing.AttrSite] != "fra-1" {
			t.Fatalf("span %s: site %q, want the session's, fra-1", s.Name, s.Attrs[tracing.AttrSite])
		}
	}
}

// A bad span refuses the message with bad_message naming it, and nothing
// of the message is kept; on a version-1 session spans are a
// bad_message.
func TestSpansRefused(t *testing.T) {
	f := newFixture(t, Config{})
	cred := f.site("fra-1")
	spans := centraltest.ProvisionTrace(traceID, time.Now())
	bad := spans[:4]
	bad[2].End = bad[2].Start.Add(-time.Minute)
	tests := map[string]struct {
		versions syncproto.VersionRange
		spans    []json.RawMessage
		contains []string
	}{
		"a bad span":   {syncproto.Supported, rawSpans(t, bad), []string{"spans[2]", bad[2].SpanID, "ends"}},
		"not a span":   {syncproto.Supported, []json.RawMessage{json.RawMessage(`{"start":"yesterday"}`)}, []string{"spans[0]", "not a span"}},
		"version 1":    {syncproto.VersionRange{Min: 1, Max: 1}, rawSpans(t, spans[:1]), []string{"version is 1", "version 2"}},
		"no trace ids": {syncproto.Supported, []json.RawMessage{json.RawMessage(`{"name":"x","service":"s"}`)}, []string{"spans[0]", "trace id"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			h := hello("fra-1", cred, 0, 0, 0)
			h.Versions = tt.versions
			c, _ := f.connect(h)
			c.send(&syncproto.Spans{Batch: 1, Spans: tt.spans})
			e, ok := c.recv().(*syncproto.Error)
			if !ok || e.Code != syncproto.CodeBadMessage {
				t.Fatalf("answer %#v, want bad_message", e)
			}
			for _, s := range tt.contains {
				if !strings.Contains(e.Message, s) {
					t.Errorf("error %q does not say %q", e.Message, s)
				}
			}
			if !c.closed() {
				t.Error("the connection stays open after the error")
			}
			if n, _ := f.db.SpanCount(); n != 0 {
				t.Errorf("%d spans kept, want none", n)
			}
		})
	}
}
