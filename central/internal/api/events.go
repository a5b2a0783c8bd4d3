package api

import (
	"net/http"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/sse"
)

// listEvents answers the site's events after ?since=, oldest first, with
// the highest sequence stored so a client knows where to continue.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	since, limit, err := httpapi.PageQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, stored, err := s.db.Events(r.PathValue("site"), since, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": events, "stored_seq": stored})
}

// streamEvents sends the site's events after ?since= (or Last-Event-ID)
// as Server-Sent Events, then each new one as it is stored, until the
// client goes away. Each event's SSE id is its sequence number.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	site := r.PathValue("site")
	since, _, err := httpapi.PageQuery(r)
	if err == nil {
		_, err = s.db.Site(site)
	}
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
			changed := s.db.WatchEvents(site)
			events, _, err := s.db.Events(site, since, httpapi.DefaultPage)
			return changed, events, err
		},
	}
	if err := tail.Follow(r.Context(), stream, sse.Resume(r, since)); err != nil {
		s.log.Error("event stream read", "site", site, "err", err)
	}
}

// resetEvents forgets the site's stored events: an operator's answer to
// a site refused with "conflict" because its history went back (a
// rebuilt or restored appliance). The site then sends its events from
// its first again.
func (s *Server) resetEvents(w http.ResponseWriter, r *http.Request) {
	dropped, err := s.db.ResetEvents(r.PathValue("site"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Warn("site events reset", "site", r.PathValue("site"), "dropped", dropped)
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"dropped": dropped, "stored_seq": 0})
}
