package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/sse"
)

// The fleet model's routes (/v1/fleet/...): the machines of every site
// with their derived state, searched with machinequery's fleet grammar;
// one machine and its merged timeline; the sites with their link and
// what they report; the overview; and a stream of the fleet's versions,
// at which a reader reloads.

// fleetMachines answers a page of the machines ?q= matches, after
// ?after=, at most ?limit=. Its Server-Timing header says how long the
// search took (fleet;dur=<ms>).
func (s *Server) fleetMachines(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > httpapi.MaxPage {
			s.writeError(w, r, errs.Invalid("limit", "must be between 1 and %d", httpapi.MaxPage))
			return
		}
		limit = n
	}
	page, err := s.fleet.Machines(q.Get("q"), limit, q.Get("after"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Server-Timing", fmt.Sprintf("fleet;dur=%.3f", float64(time.Since(start).Microseconds())/1000))
	httpapi.WriteJSON(w, http.StatusOK, page)
}

func (s *Server) fleetMachine(w http.ResponseWriter, r *http.Request) {
	m, err := s.fleet.Machine(r.PathValue("site"), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, m)
}

// fleetTimeline answers the machine's merged timeline, newest first.
func (s *Server) fleetTimeline(w http.ResponseWriter, r *http.Request) {
	_, limit, err := httpapi.PageQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := s.fleet.Timeline(r.PathValue("site"), r.PathValue("id"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": events})
}

func (s *Server) fleetSites(w http.ResponseWriter, r *http.Request) {
	sites, err := s.fleet.Sites()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sites": sites})
}

func (s *Server) fleetSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.fleet.Summary(s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, sum)
}

// fleetVersion is the data of a stream's event.
type fleetVersion struct {
	Version uint64 `json:"version"`
}

// fleetStream sends the fleet's version as it changes (event "fleet", id
// the version), from the first change after ?since= or Last-Event-ID: at
// once if the fleet changed since, then at each change, until the client
// goes away.
func (s *Server) fleetStream(w http.ResponseWriter, r *http.Request) {
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
	tail := sse.Tail[fleetVersion]{
		Name: "fleet",
		Seq:  func(v fleetVersion) uint64 { return v.Version },
		Read: func(since uint64) (<-chan struct{}, []fleetVersion, error) {
			changed := s.fleet.Changed()
			if v := s.fleet.Version(); v != since {
				return changed, []fleetVersion{{Version: v}}, nil
			}
			return changed, nil, nil
		},
	}
	if err := tail.Follow(r.Context(), stream, sse.Resume(r, since)); err != nil {
		s.log.Error("fleet stream", "err", err)
	}
}
