package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Annotations: an incident or a fault an operator or a tool (the soak)
// records against the fleet or one site, which the charts draw as a
// band over the provisions of its window with what it cost. Recording
// one is an operator's, reading them a viewer's.

// AnnotationRequest is the body of POST /v1/annotations: start and end
// are RFC 3339 times, end left out for an instant. They are read as
// strings so that a bad one is refused by its name.
type AnnotationRequest struct {
	Site  string `json:"site,omitempty"`
	Kind  string `json:"kind"`
	Start string `json:"start"`
	End   string `json:"end,omitempty"`
	Text  string `json:"text,omitempty"`
}

// annotation is the request as the store records it, by who.
func (req *AnnotationRequest) annotation(by string) (store.Annotation, error) {
	a := store.Annotation{Site: req.Site, Kind: req.Kind, Text: req.Text, By: by}
	for name, f := range map[string]struct {
		v string
		t *time.Time
	}{"start": {req.Start, &a.Start}, "end": {req.End, &a.End}} {
		if f.v == "" {
			continue
		}
		var err error
		if *f.t, err = time.Parse(time.RFC3339, f.v); err != nil {
			return a, errs.Invalid(name, "%q is not an RFC 3339 time (2026-12-07T06:00:00Z)", f.v)
		}
	}
	return a, nil
}

// addAnnotation records an annotation by the caller and answers it,
// 201; bad input or an unknown site is refused naming what was wrong,
// and while a member of a replicated central runs a release that does
// not apply annotations, the store's refusal is answered as is (503,
// naming the node: store.CommandCheck).
func (s *Server) addAnnotation(w http.ResponseWriter, r *http.Request) {
	var req AnnotationRequest
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	in, err := req.annotation(caller(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.db.AddAnnotation(in)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	note := noteOf(r)
	note.target, note.detail = fmt.Sprintf("annotations/%d", a.ID), a.Kind
	if a.Site != "" {
		note.detail += " site " + a.Site
	}
	httpapi.WriteJSON(w, http.StatusCreated, a)
}

// maxAnnotationsPage is the most annotations one answer holds.
const maxAnnotationsPage = 5000

// listAnnotations answers {"annotations": [...]}, newest start first:
// those of ?site= and the fleet-wide ones (every one without it), whose
// window touches ?since= and ?until= (RFC 3339), at most ?limit=.
func (s *Server) listAnnotations(w http.ResponseWriter, r *http.Request) {
	f, err := annotationQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := s.db.Annotations(f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"annotations": out})
}

// annotationQuery reads the filter of GET /v1/annotations.
func annotationQuery(r *http.Request) (store.AnnotationFilter, error) {
	q := r.URL.Query()
	f := store.AnnotationFilter{Site: q.Get("site")}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339, v); err != nil {
				return f, errs.Invalid(name, "is not an RFC 3339 time (2026-12-07T06:00:00Z)")
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAnnotationsPage {
			return f, errs.Invalid("limit", "must be 1 to %d", maxAnnotationsPage)
		}
		f.Limit = n
	}
	return f, nil
}
