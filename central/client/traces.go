package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/outposthq/outpost/internal/tracing"
)

// Trace is a trace as central answers it: its spans by start (central's,
// its sites', their installers'), the waterfall of its provision, and
// how complete it is.
type Trace struct {
	TraceID      string               `json:"trace_id"`
	Spans        []tracing.Span       `json:"spans"`
	Phases       []tracing.Phase      `json:"phases"`
	Completeness tracing.Completeness `json:"completeness"`
}

// Trace reads the trace traceID (32 hex digits): a 404 *Error naming it
// if central holds none of its spans.
func (c *Client) Trace(ctx context.Context, traceID string) (*Trace, error) {
	var t Trace
	err := c.Do(ctx, http.MethodGet, "/v1/traces/"+url.PathEscape(traceID), nil, &t)
	return &t, err
}

// MachineTrace reads the trace of the last order of machine id of site:
// a 404 *Error saying why if it has none.
func (c *Client) MachineTrace(ctx context.Context, site, id string) (*Trace, error) {
	var t Trace
	err := c.Do(ctx, http.MethodGet, "/v1/fleet/machines/"+url.PathEscape(site)+"/"+url.PathEscape(id)+"/trace", nil, &t)
	return &t, err
}
