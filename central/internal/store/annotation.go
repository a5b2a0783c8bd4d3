package store

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
)

// Annotation is an incident or a fault an operator, or a tool such as
// the soak, recorded against the fleet (Site "") or one site: its kind,
// its window and what it was. The charts draw it as a band over the
// provisions of its window, with what it cost.
type Annotation struct {
	ID   uint64 `json:"id"`
	Site string `json:"site,omitempty"`
	Kind string `json:"kind"`
	// Start and End are its window; End equal to Start marks an instant.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Text  string    `json:"text,omitempty"`
	// By is the name of the token that recorded it; Created when.
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
}

// AnnotationFilter selects annotations: those of Site and the
// fleet-wide ones (Site "": all), whose window touches [Since, Until]
// (a zero bound is open), the Limit newest by start.
type AnnotationFilter struct {
	Site         string
	Since, Until time.Time
	Limit        int
}

// Limits of annotations.
const (
	// keepAnnotations is how many annotations central keeps: one past it
	// forgets the oldest recorded.
	keepAnnotations = 100_000
	// MaxAnnotationKind and MaxAnnotationText bound a kind and a text.
	MaxAnnotationKind = 64
	MaxAnnotationText = 1000
	// DefaultAnnotations is how many a list returns without a limit.
	DefaultAnnotations = 500
)

// bucketAnnotations holds the annotations (apply_annotation.go).
var bucketAnnotations = []byte("annotations") // big-endian id -> Annotation

// Check checks an annotation as it is recorded, naming the field that
// is wrong; an End left zero is set to Start (an instant). The site is
// checked to exist when it is applied.
func (a *Annotation) Check() error {
	switch {
	case strings.TrimSpace(a.Kind) == "":
		return errs.Invalid("kind", "is required")
	case len(a.Kind) > MaxAnnotationKind:
		return errs.Invalid("kind", "is %d bytes, longer than %d", len(a.Kind), MaxAnnotationKind)
	case strings.ContainsFunc(a.Kind, unicode.IsControl):
		return errs.Invalid("kind", "holds a control character")
	case a.Start.IsZero():
		return errs.Invalid("start", "is required")
	case len(a.Text) > MaxAnnotationText:
		return errs.Invalid("text", "is %d bytes, longer than %d", len(a.Text), MaxAnnotationText)
	}
	if a.End.IsZero() {
		a.End = a.Start
	}
	if a.End.Before(a.Start) {
		return errs.Invalid("end", "%s is before start %s", a.End.UTC().Format(time.RFC3339), a.Start.UTC().Format(time.RFC3339))
	}
	return nil
}

// AddAnnotation records a (checked, its By set by the caller) and
// returns it with its id and creation time; an unknown site is refused
// and nothing is recorded.
func (d *DB) AddAnnotation(a Annotation) (*Annotation, error) {
	if err := a.Check(); err != nil {
		return nil, err
	}
	a.ID, a.Created = 0, d.now().UTC()
	a.Start, a.End = a.Start.UTC(), a.End.UTC()
	id, err := d.exec(cmdAddAnnotation, &addAnnotationPayload{Annotation: &a})
	if err != nil {
		return nil, err
	}
	a.ID = id
	return &a, nil
}

// Annotations returns the annotations f selects, newest start first.
func (d *DB) Annotations(f AnnotationFilter) ([]Annotation, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultAnnotations
	}
	out := []Annotation{}
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAnnotations)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var a Annotation
			if err := json.Unmarshal(v, &a); err != nil {
				return ErrCorrupt
			}
			if f.matches(&a) {
				out = append(out, a)
			}
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b Annotation) int { return b.Start.Compare(a.Start) })
	return out[:min(len(out), f.Limit)], err
}

func (f *AnnotationFilter) matches(a *Annotation) bool {
	switch {
	case f.Site != "" && a.Site != "" && a.Site != f.Site:
		return false
	case !f.Since.IsZero() && a.End.Before(f.Since):
		return false
	case !f.Until.IsZero() && a.Start.After(f.Until):
		return false
	}
	return true
}
