package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Annotation is an incident or a fault recorded against the fleet (Site
// "") or one site, which the portal's charts mark with what it cost.
type Annotation struct {
	ID      uint64    `json:"id"`
	Site    string    `json:"site,omitempty"`
	Kind    string    `json:"kind"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Text    string    `json:"text,omitempty"`
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
}

// NewAnnotation is what Annotate records: End zero marks an instant.
type NewAnnotation struct {
	Site, Kind, Text string
	Start, End       time.Time
}

// Annotate records an annotation (operators and admins only) and
// returns it as central recorded it.
func (c *Client) Annotate(ctx context.Context, a NewAnnotation) (Annotation, error) {
	body := map[string]string{"kind": a.Kind, "start": a.Start.UTC().Format(time.RFC3339Nano)}
	if a.Site != "" {
		body["site"] = a.Site
	}
	if !a.End.IsZero() {
		body["end"] = a.End.UTC().Format(time.RFC3339Nano)
	}
	if a.Text != "" {
		body["text"] = a.Text
	}
	var out Annotation
	err := c.Do(ctx, http.MethodPost, "/v1/annotations", body, &out)
	return out, err
}

// AnnotationFilter selects annotations: a site's and the fleet-wide
// ones (Site "": all), whose window touches [Since, Until], at most
// Limit (central's default without).
type AnnotationFilter struct {
	Site         string
	Since, Until time.Time
	Limit        int
}

// Annotations reads the annotations f selects, newest start first.
func (c *Client) Annotations(ctx context.Context, f AnnotationFilter) ([]Annotation, error) {
	v := url.Values{}
	if f.Site != "" {
		v.Set("site", f.Site)
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct {
		Annotations []Annotation `json:"annotations"`
	}
	err := c.Do(ctx, http.MethodGet, withQuery("/v1/annotations", v), nil, &out)
	return out.Annotations, err
}
