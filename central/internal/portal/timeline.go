package portal

import (
	"net/http"
	"slices"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/provchart"
)

// The charts page's timeline: provisions over a window (fleet-wide or
// one site's), from the events central stored, with the annotations
// recorded against the fleet and the site drawn as bands and listed
// with what each cost (package provchart draws it, as the console and
// the soak do).

// History is what the timeline reads of central's records (*store.DB).
type History interface {
	ProvisionsEnded(site string, from, to time.Time) ([]store.ProvisionEnd, error)
	Annotations(f store.AnnotationFilter) ([]store.Annotation, error)
}

// timelineData is the timeline of the charts page.
type timelineData struct {
	provchart.View
	// Site is the site shown ("" for the fleet); Sites are those to
	// choose from, Windows the windows.
	Site    string
	Sites   []string
	Windows []string
}

// timelineOf reads the timeline the request asks for: ?site= (a known
// site, or the fleet) and ?window= (provchart.Windows). Nil without a
// history to read.
func (s *Server) timelineOf(r *http.Request) (*timelineData, error) {
	if s.cfg.History == nil {
		return nil, nil
	}
	q := r.URL.Query()
	span, err := provchart.ParseWindow(q.Get("window"))
	if err != nil {
		return nil, errs.Invalid("window", "%s", err.Error())
	}
	d := &timelineData{Site: q.Get("site")}
	for _, w := range provchart.Windows {
		d.Windows = append(d.Windows, w.Name)
	}
	if d.Sites, err = s.siteIDs(); err != nil {
		return nil, err
	}
	if d.Site != "" && !slices.Contains(d.Sites, d.Site) {
		return nil, errs.NotFound("site", d.Site)
	}
	now := s.now().UTC()
	ends, err := s.cfg.History.ProvisionsEnded(d.Site, now.Add(-span), now)
	if err != nil {
		return nil, err
	}
	as, err := s.cfg.History.Annotations(store.AnnotationFilter{Site: d.Site, Since: now.Add(-span), Until: now})
	if err != nil {
		return nil, err
	}
	name := q.Get("window")
	if name == "" {
		name = provchart.DefaultWindow
	}
	d.View = provchart.NewView(name, span, now, provisionsOfEnds(ends), annotationsOf(as), nil)
	return d, nil
}

// siteIDs are the fleet's sites' ids, sorted.
func (s *Server) siteIDs() ([]string, error) {
	sites, err := s.cfg.Fleet.Sites()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(sites))
	for _, site := range sites {
		ids = append(ids, site.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

func provisionsOfEnds(ends []store.ProvisionEnd) []provchart.Provision {
	out := make([]provchart.Provision, 0, len(ends))
	for _, e := range ends {
		out = append(out, provchart.Provision{Start: e.Created, End: e.Ended, OK: e.OK})
	}
	return out
}

func annotationsOf(as []store.Annotation) []provchart.Annotation {
	out := make([]provchart.Annotation, 0, len(as))
	for _, a := range as {
		out = append(out, provchart.Annotation{Site: a.Site, Kind: a.Kind, Text: a.Text, Start: a.Start, End: a.End})
	}
	return out
}
