package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/testcentral"
)

// TestAnnotationCalls: Annotate and Annotations against a real
// (replicated) central, whose answers decode strictly into the
// client's types; a bad annotation's error names what was wrong.
func TestAnnotationCalls(t *testing.T) {
	cen := testcentral.Start(t, testcentral.Replicated(t))
	c := client.New(cen.URL, cen.Token, nil)
	ctx := t.Context()
	if _, err := c.CreateSite(ctx, "fra-1", "Frankfurt"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	a, err := c.Annotate(ctx, client.NewAnnotation{Site: "fra-1", Kind: "bmc.dead", Text: "target m3", Start: t0, End: t0.Add(time.Minute)})
	if err != nil || a.ID == 0 || a.Site != "fra-1" || !a.End.Equal(t0.Add(time.Minute)) {
		t.Fatalf("annotate: %+v, %v", a, err)
	}
	if _, err := c.Annotate(ctx, client.NewAnnotation{Kind: "x", Start: t0, End: t0.Add(-time.Second)}); err == nil || !strings.Contains(err.Error(), "end") {
		t.Errorf("end before start: %v, want an error naming end", err)
	}
	var e *client.Error
	if _, err := c.Annotate(ctx, client.NewAnnotation{Site: "nowhere", Kind: "x", Start: t0}); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Errorf("unknown site: %v, want 404", err)
	}
	got, err := c.Annotations(ctx, client.AnnotationFilter{Site: "fra-1", Since: t0.Add(-time.Hour)})
	if err != nil || len(got) != 1 || got[0].Kind != "bmc.dead" || got[0].By == "" {
		t.Fatalf("annotations: %+v, %v", got, err)
	}
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodGet, "/v1/annotations", nil, &raw); err != nil {
		t.Fatal(err)
	}
	strict(t, "/v1/annotations", raw, new(struct{ Annotations []client.Annotation }))
}
