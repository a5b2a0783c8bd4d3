package portal

import (
	"net/http"
	"slices"
	"sync"
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
	ends, err := s.ends.read(s.cfg.History, d.Site, span, now)
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

// endsTTL is how long a read of the provisions that ended serves the
// same site and window: a charts page refreshes live up to once a
// second, and a read scans the window's events (about a second for a
// day of 10,000 provisions: BenchmarkProvisionsEnded).
const endsTTL = 15 * time.Second

// endsCache keeps the last read of the provisions that ended per site
// and window, for endsTTL; the annotations, a small read, are read
// every time.
type endsCache struct {
	mu      sync.Mutex
	entries map[string]endsEntry
}

type endsEntry struct {
	at   time.Time
	ends []store.ProvisionEnd
}

// read is the provisions that ended at site in the span to now, read
// from h unless read less than endsTTL before.
func (c *endsCache) read(h History, site string, span time.Duration, now time.Time) ([]store.ProvisionEnd, error) {
	key := site + "/" + span.String()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < endsTTL && !now.Before(e.at) {
		return e.ends, nil
	}
	ends, err := h.ProvisionsEnded(site, now.Add(-span), now)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]endsEntry{}
	}
	c.entries[key] = endsEntry{at: now, ends: ends}
	c.mu.Unlock()
	return ends, nil
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
		out = append(out, provchart.Provision{Start: e.Created, End: e.Ended, OK: e.OK, Site: e.Site})
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
