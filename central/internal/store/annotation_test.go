package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// TestAnnotations: an annotation is recorded with its id, listed by
// site (with the fleet-wide ones) and window, newest first; bad input
// is refused naming its field and records nothing.
func TestAnnotations(t *testing.T) {
	db, _ := openTest(t)
	_, hash := NewSecret()
	if _, err := db.CreateSite("fra-1", "Frankfurt", hash); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i, a := range []Annotation{
		{Site: "fra-1", Kind: "site.kill", Start: t0, End: t0.Add(5 * time.Second), Text: "leader"},
		{Kind: "power", Start: t0.Add(time.Hour), Text: "fleet-wide"},
	} {
		got, err := db.AddAnnotation(a)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != uint64(i+1) || got.Created.IsZero() || !got.End.After(got.Start.Add(-time.Nanosecond)) {
			t.Errorf("recorded %+v", got)
		}
	}
	for name, tc := range map[string]struct {
		a     Annotation
		field string
	}{
		"empty kind":      {Annotation{Kind: " ", Start: t0}, "kind"},
		"no start":        {Annotation{Kind: "x"}, "start"},
		"end before":      {Annotation{Kind: "x", Start: t0, End: t0.Add(-time.Second)}, "end"},
		"long text":       {Annotation{Kind: "x", Start: t0, Text: strings.Repeat("a", MaxAnnotationText+1)}, "text"},
		"control in kind": {Annotation{Kind: "x\ny", Start: t0}, "kind"},
	} {
		_, err := db.AddAnnotation(tc.a)
		if e, ok := errs.AsError(err); !ok || e.Field != tc.field {
			t.Errorf("%s: %v, want invalid %s", name, err, tc.field)
		}
	}
	if _, err := db.AddAnnotation(Annotation{Site: "nowhere", Kind: "x", Start: t0}); !errors.Is(err, errs.ErrNotFound) || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("unknown site: %v, want not found naming it", err)
	}
	all, err := db.Annotations(AnnotationFilter{})
	if err != nil || len(all) != 2 || all[0].Kind != "power" {
		t.Fatalf("all annotations %+v %v, want the two recorded, newest first", all, err)
	}
	for name, tc := range map[string]struct {
		f    AnnotationFilter
		want int
	}{
		"site and fleet-wide": {AnnotationFilter{Site: "fra-1"}, 2},
		"other site":          {AnnotationFilter{Site: "ams-1"}, 1},
		"since":               {AnnotationFilter{Since: t0.Add(time.Minute)}, 1},
		"until":               {AnnotationFilter{Until: t0.Add(time.Minute)}, 1},
		"limit":               {AnnotationFilter{Limit: 1}, 1},
	} {
		got, err := db.Annotations(tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: %d annotations (%v), want %d", name, len(got), err, tc.want)
		}
	}
}
