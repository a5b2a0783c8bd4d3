package tftp

import (
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/internal/tracing"
)

// fakeTraces traces the machine at 127.0.0.1 under tp while on.
type fakeTraces struct {
	tp string
	on atomic.Bool
}

func (f *fakeTraces) ForAddr(addr netip.Addr) (machinetrace.Trace, error) {
	if !f.on.Load() || addr != netip.MustParseAddr("127.0.0.1") {
		return machinetrace.Trace{}, nil
	}
	return machinetrace.Trace{Traceparent: f.tp, Machine: "m1", Workflow: "wf1", MAC: "52:54:00:12:34:56"}, nil
}

// Each read by a traced machine (a real tftp client) is a tftp.read span,
// child of the machine's trace, naming the file and the bytes sent; a
// missing file's span fails; an untraced machine's reads record nothing.
func TestReadSpans(t *testing.T) {
	rec := tracetest.Start(t)
	tp, end := rec.Root(t, tracing.SpanOrderApply)
	end()
	traces := &fakeTraces{tp: tp}
	traces.on.Store(true)
	fx := newFixture(t, Config{Traces: traces})
	fx.tftpGet(t, "/ipxe.efi")
	fx.tftpGet(t, "missing.efi")
	traces.on.Store(false)
	fx.tftpGet(t, "random.bin")

	spans := rec.Named(t, tp, tracing.SpanTFTP)
	if len(spans) != 2 {
		t.Fatalf("%d tftp.read spans, want 2: %+v", len(spans), spans)
	}
	byFile := map[string]tracing.Span{}
	for _, s := range spans {
		byFile[s.Attrs[attrFile]] = s
		if s.Parent != tracetest.SpanID(tp) || s.Attrs[tracing.AttrMachine] != "m1" || s.Attrs[tracing.AttrMAC] != "52:54:00:12:34:56" {
			t.Errorf("span of %s: %+v", s.Attrs[attrFile], s)
		}
	}
	if s := byFile["/ipxe.efi"]; s.Error != "" || s.Attrs[attrBytes] != strconv.Itoa(len(fx.files["ipxe.efi"])) {
		t.Errorf("ipxe.efi's span: error %q, %s bytes", s.Error, s.Attrs[attrBytes])
	}
	if s := byFile["missing.efi"]; s.Error != "file not found" {
		t.Errorf("missing file's span: error %q", s.Error)
	}
}
