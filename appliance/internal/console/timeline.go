package console

import (
	"net/http"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/provchart"
)

// The charts page's timeline: the site's provisions over a window, from
// its own store (so it draws with central unreachable), drawn by
// package provchart as central's portal draws them. The site keeps no
// annotations (central does); it marks its own BMC jobs that failed,
// the fault an operator at the site looks for first, as instants.

// markedKinds are the site's events the timeline marks.
var markedKinds = map[string]bool{"bmc.job.failed": true}

// maxMarkScan bounds the events the timeline reads back for its marks
// (each decoded; the page refreshes live): on a site busier than that
// over the window, the older part of the window has no marks.
const maxMarkScan = 50_000

// timelineData is the timeline of the charts page.
type timelineData struct {
	provchart.View
	Windows []string
}

// timelineOf computes the timeline of the window ?window= names, of
// provisions ps.
func (s *Server) timelineOf(r *http.Request, ps []provision) (*timelineData, error) {
	name := r.URL.Query().Get("window")
	span, err := provchart.ParseWindow(name)
	if err != nil {
		return nil, errs.Invalid("window", "%s", err.Error())
	}
	if name == "" {
		name = provchart.DefaultWindow
	}
	now := s.now().UTC()
	var marks []provchart.Annotation
	if err := s.cfg.Store.View(func(tx *store.Tx) (err error) {
		marks, err = marksSince(tx, now.Add(-span))
		return err
	}); err != nil {
		return nil, err
	}
	d := &timelineData{View: provchart.NewView(name, span, now, chartProvisions(ps), marks, nil)}
	for _, w := range provchart.Windows {
		d.Windows = append(d.Windows, w.Name)
	}
	return d, nil
}

// chartProvisions are ps as provchart takes them.
func chartProvisions(ps []provision) []provchart.Provision {
	out := make([]provchart.Provision, 0, len(ps))
	for _, p := range ps {
		out = append(out, provchart.Provision{Start: p.Ended.Add(-p.Took), End: p.Ended, OK: p.OK})
	}
	return out
}

// marksSince are the site's events of markedKinds since from, as
// instants, read from the newest back.
func marksSince(tx *store.Tx, from time.Time) ([]provchart.Annotation, error) {
	var out []provchart.Annotation
	n := 0
	err := tx.EventsBefore(0, 0, func(e *store.Event) bool {
		n++
		if e.Time.Before(from) || n > maxMarkScan {
			return false
		}
		if markedKinds[e.Kind] {
			out = append(out, provchart.Annotation{Kind: e.Kind, Text: e.MachineID + ": " + e.Message, Start: e.Time, End: e.Time})
		}
		return true
	})
	return out, err
}
