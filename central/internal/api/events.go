package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

const (
	defaultEventPage = 500
	maxEventPage     = 10000
	// streamHeartbeat keeps idle streams (and proxies) alive.
	streamHeartbeat = 15 * time.Second
)

// eventQuery reads ?since= and ?limit=.
func eventQuery(r *http.Request) (since uint64, limit int, err error) {
	q := r.URL.Query()
	if v := q.Get("since"); v != "" {
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, errs.Invalid("since", "%q is not a sequence number", v)
		}
	}
	limit = defaultEventPage
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxEventPage {
			return 0, 0, errs.Invalid("limit", "must be between 1 and %d", maxEventPage)
		}
	}
	return since, limit, nil
}

// listEvents answers the site's events after ?since=, oldest first, with
// the highest sequence stored so a client knows where to continue.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	since, limit, err := eventQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, stored, err := s.db.Events(r.PathValue("site"), since, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "stored_seq": stored})
}

// streamEvents sends the site's events after ?since= (or Last-Event-ID)
// as Server-Sent Events, then each new one as it is stored, until the
// client goes away. Each event's SSE id is its sequence number.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	site := r.PathValue("site")
	since, _, err := eventQuery(r)
	if err == nil {
		_, err = s.db.Site(site)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if id, err := strconv.ParseUint(v, 10, 64); err == nil {
			since = id
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	for {
		changed := s.db.WatchEvents(site)
		events, _, err := s.db.Events(site, since, defaultEventPage)
		if err != nil {
			s.log.Error("event stream read", "site", site, "err", err)
			return
		}
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for _, e := range events {
			data, _ := json.Marshal(e)
			if _, err := fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", e.Seq, data); err != nil {
				return
			}
			since = e.Seq
		}
		if rc.Flush() != nil {
			return
		}
		if len(events) == defaultEventPage {
			continue
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
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
	writeJSON(w, http.StatusOK, map[string]any{"dropped": dropped, "stored_seq": 0})
}
