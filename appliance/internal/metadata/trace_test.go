package metadata

import (
	"net/http"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// Each metadata request of a machine whose latest workflow has a
// traceparent is a metadata.get span, child of it, naming the machine,
// its MAC and address, the path and the status; what was answered is in
// no span; a machine without a trace records nothing.
func TestRequestSpans(t *testing.T) {
	rec := tracetest.Start(t)
	tp, end := rec.Root(t, tracing.SpanOrderApply)
	end()
	f := newFixture(t)
	f.put(t, &store.Workflow{ID: "wf3", MachineID: "m3", Template: "install", Traceparent: tp,
		Values: map[string]string{"user_data": "#cloud-config\n# SECRET-USER-DATA\n"}})

	for path, want := range map[string]int{
		"/latest/meta-data/instance-id":     http.StatusOK,
		"/latest/meta-data/public-keys/7/":  http.StatusNotFound,
		"/nocloud/user-data":                http.StatusOK,
		"/latest/meta-data/no-such-leaf/xy": http.StatusNotFound, // no route: not the machine's
	} {
		if code, _ := f.get(t, addr3, path); code != want {
			t.Fatalf("GET %s: %d, want %d", path, code, want)
		}
	}
	if code, _ := f.get(t, addr1, "/latest/meta-data/instance-id"); code != http.StatusOK {
		t.Fatalf("m1's request: %d", code)
	}

	spans := rec.Spans(t, tp)
	got := map[string]tracing.Span{}
	for _, s := range spans {
		if s.Name != tracing.SpanMetadata {
			continue
		}
		got[s.Attrs[attrPath]] = s
		if s.Parent != tracetest.SpanID(tp) || s.Attrs[tracing.AttrMachine] != "m3" || s.Attrs[tracing.AttrMAC] != "52:54:00:12:34:03" ||
			s.Attrs[attrIP] != addr3 || s.Kind != "server" {
			t.Errorf("span of %s: %+v", s.Attrs[attrPath], s)
		}
		for k, v := range s.Attrs {
			if strings.Contains(v, "SECRET-USER-DATA") || strings.Contains(v, bmcPassword) || strings.Contains(v, bmcUser) {
				t.Errorf("span of %s: attribute %s shows what was answered or the BMC", s.Attrs[attrPath], k)
			}
		}
	}
	if len(got) != 3 {
		t.Errorf("metadata.get spans of %d paths, want 3: %v", len(got), got)
	}
	if s := got["/latest/meta-data/instance-id"]; s.Attrs[attrStatus] != "200" || s.Error != "" {
		t.Errorf("instance-id's span: status %s, error %q", s.Attrs[attrStatus], s.Error)
	}
	if s := got["/latest/meta-data/public-keys/7/"]; s.Attrs[attrStatus] != "404" || s.Error == "" {
		t.Errorf("missing key's span: status %s, error %q", s.Attrs[attrStatus], s.Error)
	}
	for _, s := range rec.All(t) {
		if s.Attrs[tracing.AttrMachine] == "m1" {
			t.Errorf("m1, whose workflow has no traceparent, recorded %s", s.Name)
		}
	}
}
