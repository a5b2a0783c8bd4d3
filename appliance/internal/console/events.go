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

// eventPage is how many events the store is read by at a time.
const eventPage = 1000

// eachEvent calls fn on each event of the log, oldest first, until fn
// returns false.
func eachEvent(tx *store.Tx, fn func(*store.Event) bool) error {
	var since uint64
	for {
		evs, err := tx.EventsSince(since, eventPage)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if !fn(e) {
				return nil
			}
			since = e.Seq
		}
		if len(evs) < eventPage {
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
	Shown  int
	Last   uint64
}

// eventsShown bounds the events page; the download has them all.
const eventsShown = 500

// events serves the event log, newest first.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	d := eventsData{Filter: eventFilterOf(r)}
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		d.Last = tx.LastEventSeq()
		return eachEvent(tx, func(e *store.Event) bool {
			if d.Filter.matches(e) {
				d.Events = append(d.Events, e)
				if len(d.Events) > 2*eventsShown {
					d.Events = slices.Delete(d.Events, 0, eventsShown)
				}
			}
			return true
		})
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	if len(d.Events) > eventsShown {
		d.Events = d.Events[len(d.Events)-eventsShown:]
	}
	slices.Reverse(d.Events)
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
