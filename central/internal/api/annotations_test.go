package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/access"
)

// TestAnnotationsAPI: an operator records an annotation, a viewer reads
// it but may not record one, a request without a token is refused; bad
// input (no kind, end before start, an unknown site, a field central
// does not know) is refused naming what was wrong and records nothing;
// the record is audited.
func TestAnnotationsAPI(t *testing.T) {
	e := newEnv(t)
	e.createSite("s1")
	operator, viewer := e.newToken("soak", access.Operator), e.newToken("tech", access.Viewer)
	const good = `{"site":"s1","kind":"site.kill","start":"2026-12-07T12:00:00Z","end":"2026-12-07T12:00:05Z","text":"leader n1"}`
	var a store.Annotation
	if code := e.doToken(operator, "POST", "/v1/annotations", good, &a); code != http.StatusCreated || a.ID != 1 || a.By != "soak" || a.Kind != "site.kill" {
		t.Fatalf("operator's annotation: %d %+v", code, a)
	}
	if code := e.doToken(viewer, "POST", "/v1/annotations", good, nil); code != http.StatusForbidden {
		t.Errorf("a viewer's annotation answered %d, want 403", code)
	}
	if code := e.doToken("", "POST", "/v1/annotations", good, nil); code != http.StatusUnauthorized {
		t.Errorf("an annotation without a token answered %d, want 401", code)
	}
	for name, tc := range map[string]struct {
		body string
		code int
		says string
	}{
		"empty kind":      {`{"kind":"","start":"2026-12-07T12:00:00Z"}`, http.StatusBadRequest, "kind"},
		"end before":      {`{"kind":"x","start":"2026-12-07T12:00:00Z","end":"2026-12-07T11:00:00Z"}`, http.StatusBadRequest, "before start"},
		"unknown site":    {`{"site":"nowhere","kind":"x","start":"2026-12-07T12:00:00Z"}`, http.StatusNotFound, `nowhere`},
		"unknown field":   {`{"kind":"x","start":"2026-12-07T12:00:00Z","colour":"red"}`, http.StatusBadRequest, "colour"},
		"not a time":      {`{"kind":"x","start":"yesterday"}`, http.StatusBadRequest, "start"},
		"no start at all": {`{"kind":"x"}`, http.StatusBadRequest, "start"},
	} {
		var out json.RawMessage
		if code := e.doToken(operator, "POST", "/v1/annotations", tc.body, &out); code != tc.code || !strings.Contains(string(out), tc.says) {
			t.Errorf("%s: %d %s, want %d saying %q", name, code, out, tc.code, tc.says)
		}
	}
	var list struct{ Annotations []store.Annotation }
	if code := e.doToken(viewer, "GET", "/v1/annotations?site=s1&since=2026-12-07T11:00:00Z", "", &list); code != http.StatusOK || len(list.Annotations) != 1 {
		t.Fatalf("viewer's list: %d %+v, want the one recorded (the refused ones changed nothing)", code, list)
	}
	if code := e.doToken(viewer, "GET", "/v1/annotations?until=2026-12-07T11:00:00Z", "", &list); code != http.StatusOK || len(list.Annotations) != 0 {
		t.Errorf("list until before it: %d %+v, want none", code, list)
	}
	var bad json.RawMessage
	if code := e.doToken(viewer, "GET", "/v1/annotations?since=noon", "", &bad); code != http.StatusBadRequest || !strings.Contains(string(bad), "since") {
		t.Errorf("a bad since: %d %s, want 400 naming since", code, bad)
	}
	entries, err := e.db.Audit(store.AuditFilter{Action: "annotation.create"})
	if err != nil || len(entries) == 0 || entries[0].Target != "annotations/1" || entries[0].Detail != "site.kill site s1" {
		t.Errorf("audit %+v %v, want the annotation's entry", entries, err)
	}
}
