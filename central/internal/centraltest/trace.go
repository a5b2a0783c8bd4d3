package centraltest

import (
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/tracing"
)

// ProvisionTrace is a whole provision's trace (every phase of its
// waterfall, one root, no orphan) of trace id traceID (32 hex digits),
// starting at t0: central's order.place, then the site's, the agent's
// and the installed OS's spans. The first boot's metadata request is its
// last span; a test that sends the trace in parts holds it back.
func ProvisionTrace(traceID string, t0 time.Time) []tracing.Span {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	n := 0
	span := func(parent, name, service string, start, d int) tracing.Span {
		n++
		s := tracing.Span{TraceID: traceID, SpanID: fmt.Sprintf("%016x", n), Name: name, Service: service,
			Start: at(start), End: at(start + d)}
		if parent != "" {
			s.Parent = fmt.Sprintf("%016s", parent)
		}
		return s
	}
	action := func(name, typ string, start, d int) tracing.Span {
		s := span("7", tracing.SpanActionPrefix+name, "outpost-agent", start, d)
		s.Attrs = map[string]string{tracing.AttrActionType: typ}
		return s
	}
	return []tracing.Span{
		span("", tracing.SpanOrderPlace, "centrald", 0, 1),    // 1
		span("1", tracing.SpanOrderApply, "applianced", 2, 1), // 2
		span("2", "bmc.power_cycle", "applianced", 3, 2),      // 3
		span("2", tracing.SpanDHCP, "applianced", 10, 1),      // 4
		span("2", tracing.SpanBootHTTP, "applianced", 12, 1),  // 5
		span("2", tracing.SpanBootHTTP, "applianced", 13, 4),  // 6
		span("2", tracing.SpanAgent, "outpost-agent", 30, 65), // 7
		action("wipe", "disk.wipe", 31, 2),                    // 8
		action("image", "image.write", 33, 60),                // 9
		action("hostname", "file.write", 93, 1),               // a
		action("reboot", "reboot", 94, 1),                     // b
		span("2", tracing.SpanDHCP, "applianced", 150, 1),     // c
		span("2", tracing.SpanMetadata, "applianced", 160, 1), // d
	}
}
