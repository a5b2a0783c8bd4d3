package console

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// eventBatch is how many events the store is read by at a time.
const eventBatch = 1000

// eachEvent calls fn on each event of the log, oldest first, until fn
// returns false.
func eachEvent(tx *store.Tx, fn func(*store.Event) bool) error {
	var since uint64
	for {
		evs, err := tx.EventsSince(since, eventBatch)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if !fn(e) {
				return nil
			}
			since = e.Seq
		}
		if len(evs) < eventBatch {
			return nil
		}
	}
}

// match reports whether pattern (with its optional '!') matches any of
// values, as a case-insensitive substring.
func match(pattern string, values ...string) bool {
	if pattern == "" {
		return true
	}
	neg := strings.HasPrefix(pattern, "!")
	p := strings.ToLower(strings.TrimPrefix(pattern, "!"))
	found := slices.ContainsFunc(values, func(v string) bool { return strings.Contains(strings.ToLower(v), p) })
	return found != neg
}

// eventFilter is the events page's filter: each field a substring of
// the event's, '!' negating it.
type eventFilter struct {
	Machine, Kind, By, Text string
}

func eventFilterOf(r *http.Request) eventFilter {
	q := r.URL.Query()
	return eventFilter{Machine: q.Get("machine"), Kind: q.Get("kind"), By: q.Get("by"), Text: q.Get("q")}
}

func (f eventFilter) matches(e *store.Event) bool {
	return match(f.Machine, e.MachineID) && match(f.Kind, e.Kind) && match(f.By, e.By) &&
		match(f.Text, e.Message, e.Kind, e.MachineID)
}

// Query is the filter as a query string, for the download links.
func (f eventFilter) Query() string {
	var b []string
	for k, v := range map[string]string{"machine": f.Machine, "kind": f.Kind, "by": f.By, "q": f.Text} {
		if v != "" {
			b = append(b, k+"="+urlQueryEscape(v))
		}
	}
	slices.Sort(b)
	return strings.Join(b, "&")
}

type eventsData struct {
	Filter eventFilter
	Events []*store.Event
	Last   uint64
	// Page is where this page of the log is; Older, if not 0, is the
	// before= of the next page back.
	Page  eventPage
	Older uint64
	// Scanned is the oldest event read: a filter that matched fewer than
	// a page stopped there, within eventsScan.
	Scanned uint64
}

// eventPage is a page of the events page: the events with since < Seq <
// before (before 0: up to the newest), newest first, at most limit.
type eventPage struct {
	Since, Before uint64
	Limit         int
}

// Bounds of the events page: it shows eventsShown events unless limit=
// asks for fewer (or up to eventsMax), and reads at most eventsScan
// events of the log per page, however few of them a filter matches (the
// page links to the ones before). The download has them all.
const (
	eventsShown = 100
	eventsMax   = 500
	eventsScan  = 5000
)

func eventPageOf(r *http.Request) (eventPage, error) {
	p := eventPage{Limit: eventsShown}
	q := r.URL.Query()
	for _, f := range []struct {
		name string
		v    *uint64
	}{{"since", &p.Since}, {"before", &p.Before}} {
		if s := q.Get(f.name); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return p, errs.Invalid(f.name, "%q is not an event sequence number", s)
			}
			*f.v = n
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > eventsMax {
			return p, errs.Invalid("limit", "%q is not a number from 1 to %d", s, eventsMax)
		}
		p.Limit = n
	}
	return p, nil
}

// Query is the page's filter and limit as a query string, for its links.
func (d eventsData) Query() string {
	q := d.Filter.Query()
	if d.Page.Limit != eventsShown {
		q = strings.TrimPrefix(q+"&limit="+strconv.Itoa(d.Page.Limit), "&")
	}
	if d.Page.Since != 0 {
		q = strings.TrimPrefix(q+"&since="+strconv.FormatUint(d.Page.Since, 10), "&")
	}
	return q
}

// events serves a page of the event log, newest first: it reads the log
// backwards from the page's start and stops at a page of matches, or
// after eventsScan events, so a page costs the same with 20 events in
// the log or 20 million.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	d := eventsData{Filter: eventFilterOf(r)}
	var err error
	if d.Page, err = eventPageOf(r); err != nil {
		s.failErr(w, r, err)
		return
	}
	err = s.cfg.Store.View(func(tx *store.Tx) error {
		d.Last = tx.LastEventSeq()
		scanned := 0
		return tx.EventsBefore(d.Page.Since, d.Page.Before, func(e *store.Event) bool {
			scanned++
			d.Scanned = e.Seq
			if d.Filter.matches(e) {
				d.Events = append(d.Events, e)
			}
			return len(d.Events) < d.Page.Limit && scanned < eventsScan
		})
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	if d.Scanned > d.Page.Since+1 {
		d.Older = d.Scanned
	}
	s.render(w, r, http.StatusOK, "events", "Events", d)
}

// downloadEvents answers every event the filter matches, oldest first,
// as JSON lines (format=jsonl) or CSV (format=csv).
func (s *Server) downloadEvents(w http.ResponseWriter, r *http.Request) {
	f := eventFilterOf(r)
	format := r.URL.Query().Get("format")
	var write func(*store.Event) error
	switch format {
	case "jsonl":
		w.Header().Set("Content-Type", "application/jsonl")
		enc := json.NewEncoder(w)
		write = func(e *store.Event) error { return enc.Encode(e) }
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		defer cw.Flush()
		_ = cw.Write([]string{"seq", "time", "machine_id", "kind", "by", "message", "fields"})
		write = func(e *store.Event) error { return cw.Write(csvRecord(e)) }
	default:
		s.failErr(w, r, errs.Invalid("format", "%q is not jsonl or csv", format))
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="events.`+format+`"`)
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		return eachEvent(tx, func(e *store.Event) bool {
			return !f.matches(e) || write(e) == nil
		})
	})
	if err != nil {
		s.log.Error("event download", "err", err)
	}
}

func csvRecord(e *store.Event) []string {
	fields := ""
	if len(e.Fields) > 0 {
		b, _ := json.Marshal(e.Fields)
		fields = string(b)
	}
	return []string{strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339Nano), e.MachineID,
		e.Kind, e.By, e.Message, fields}
}
