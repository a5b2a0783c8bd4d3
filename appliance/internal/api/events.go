package api

import (
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/sse"
)

// listEvents answers the events after ?since=, oldest first, with the last
// sequence number so a client knows where to continue.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	since, limit, err := httpapi.PageQuery(r)
	if err == nil {
		err = s.consistent(r)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var events []*store.Event
	var last uint64
	err = s.db.View(func(tx *store.Tx) (err error) {
		last = tx.LastEventSeq()
		events, err = tx.EventsSince(since, limit)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if events == nil {
		events = []*store.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "last_seq": last})
}

// postEvent records an operator's event (a note on a machine's timeline),
// by the token's name.
func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) {
	var e store.Event
	if err := decodeBody(r, &e); err != nil {
		s.writeError(w, r, err)
		return
	}
	if e.Seq != 0 || e.Index != 0 {
		s.writeError(w, r, errs.Invalid("seq", "is assigned by the appliance"))
		return
	}
	if e.By != "" {
		s.writeError(w, r, errs.Invalid("by", "is the name of the token the event is posted with"))
		return
	}
	index, err := s.site.RecordEvent(r.Context(), e)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]uint64{"index": index})
}

// streamEvents sends events after ?since= (or Last-Event-ID) as
// Server-Sent Events, then every new one as it is committed, until the
// client goes away. Each event's SSE id is its sequence number, so a
// client resumes with ?since=<last id>.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	since, _, err := httpapi.PageQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	stream, err := sse.Start(w)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tail := sse.Tail[*store.Event]{
		Name: "event",
		Page: httpapi.DefaultPage,
		Seq:  func(e *store.Event) uint64 { return e.Seq },
		Read: func(since uint64) (<-chan struct{}, []*store.Event, error) {
			changed := s.db.Changed()
			var events []*store.Event
			err := s.db.View(func(tx *store.Tx) (err error) {
				events, err = tx.EventsSince(since, httpapi.DefaultPage)
				return err
			})
			return changed, events, err
		},
	}
	if err := tail.Follow(r.Context(), stream, sse.Resume(r, since)); err != nil {
		s.log.Error("event stream read", "err", err)
	}
}
