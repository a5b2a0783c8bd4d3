package provision

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

// SpanKeeper keeps the spans agents send: this node's span store (a
// *tracing.Store), which the site gathers from every node and forwards
// to central.
type SpanKeeper interface {
	// Add keeps spans, in one write; a span already kept is kept once.
	Add(spans []tracing.Span) error
}

// maxSpansBody bounds the body of POST PathSpans: agentproto.MaxSpans
// spans of an agent are well under it (each is a few hundred bytes).
const maxSpansBody = 8 << 20

// msgNoTrace refuses spans for a workflow that has no trace.
const msgNoTrace = "workflow %s has no trace: it takes no spans"

// postSpans serves POST PathSpans: the spans of the workflow's trace
// that its agent recorded, kept on this node. The credential is checked
// before the body is read, as for reports; a credential opens only its
// workflow's trace, so a span of any other trace refuses the request
// (403), as a malformed span does (400): either way nothing is kept, and
// the answer names the span and what is wrong with it.
func (s *Server) postSpans(w http.ResponseWriter, r *http.Request) {
	if s.spans == nil {
		s.writeError(w, r, &apiError{status: http.StatusNotFound, code: errs.CodeNotFound, msg: "this appliance keeps no spans"})
		return
	}
	var body agentproto.Spans
	wf, ok := s.admitWorkflow(w, r, func(r *http.Request) error { return decodeSpans(r, &body) })
	if !ok {
		return
	}
	spans, err := workflowSpans(wf, body)
	if err == nil {
		err = s.spans.Add(spans)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, agentproto.SpansAck{Kept: len(spans)})
}

// decodeSpans reads the body of POST PathSpans, strictly, up to
// maxSpansBody.
func decodeSpans(r *http.Request, body *agentproto.Spans) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSpansBody+1))
	switch {
	case err != nil:
		return &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, msg: "body: " + err.Error()}
	case len(b) > maxSpansBody:
		return &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, field: "spans",
			msg: fmt.Sprintf("body: more than %d MiB of spans: send fewer at once", maxSpansBody>>20)}
	}
	if err := store.DecodeStrict(bytes.NewReader(b), body); err != nil {
		return &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, msg: "body: " + err.Error()}
	}
	return nil
}

// workflowSpans decodes and checks the spans of body, sent for wf: each
// must be a well-formed span (tracing's Validate) of wf's trace.
func workflowSpans(wf *store.Workflow, body agentproto.Spans) ([]tracing.Span, error) {
	if n := len(body.Spans); n > agentproto.MaxSpans {
		return nil, &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, field: "spans",
			msg: fmt.Sprintf("%d spans, more than %d in one request", n, agentproto.MaxSpans)}
	}
	want := tracing.TraceID(wf.Traceparent)
	if want == "" && len(body.Spans) > 0 {
		return nil, refusal(reasonTrace, fmt.Errorf(msgNoTrace, wf.ID))
	}
	spans := make([]tracing.Span, len(body.Spans))
	for i, raw := range body.Spans {
		sp := &spans[i]
		if err := store.DecodeStrict(bytes.NewReader(raw), sp); err != nil {
			return nil, &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, field: fmt.Sprintf("spans[%d]", i),
				msg: fmt.Sprintf("span %d: %v", i, err)}
		}
		if err := sp.Validate(); err != nil {
			return nil, &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, field: fmt.Sprintf("spans[%d]", i),
				msg: fmt.Sprintf("span %d: %v", i, err)}
		}
		if sp.TraceID != want {
			return nil, refusal(reasonTrace, fmt.Errorf("span %d (%s %s) is of trace %s, not of workflow %s's trace %s: "+
				"a credential opens only its workflow's trace", i, sp.SpanID, sp.Name, sp.TraceID, wf.ID, want))
		}
	}
	return spans, nil
}
