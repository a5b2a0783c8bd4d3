package portal

import (
	"encoding/csv"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/internal/errs"
)

// auditPage is how many entries the audit page shows, and auditMax how
// many a download holds at most.
const (
	auditPage = 200
	auditMax  = 100000
)

type auditData struct {
	By, Action, Target, Since, Until string
	Entries                          []orders.AuditEntry
	// JSONL and CSV download what the page shows, with its filter.
	JSONL, CSV template.URL
	Error      string
}

// auditFilter reads the audit page's filter: by, action, target, since
// and until (RFC 3339 or a date).
func auditFilter(q url.Values) (orders.AuditFilter, error) {
	f := orders.AuditFilter{By: q.Get("by"), Action: q.Get("action"), Target: q.Get("target")}
	var err error
	if f.Since, err = parseWhen("since", q.Get("since")); err != nil {
		return f, err
	}
	f.Until, err = parseWhen("until", q.Get("until"))
	return f, err
}

func parseWhen(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errs.Invalid(field, "%q is not a time (2026-12-07, 2026-12-07T06:30 or RFC 3339)", v)
}

// audit serves the audit: who (a token's name) did what, when and from
// where, newest last, filtered; the downloads take the same filter.
func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := auditData{By: q.Get("by"), Action: q.Get("action"), Target: q.Get("target"), Since: q.Get("since"), Until: q.Get("until")}
	keep := url.Values{}
	for _, k := range []string{"by", "action", "target", "since", "until"} {
		if v := q.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	keep.Set("format", "jsonl")
	d.JSONL = template.URL("/audit/download?" + keep.Encode())
	keep.Set("format", "csv")
	d.CSV = template.URL("/audit/download?" + keep.Encode())
	f, err := auditFilter(q)
	if err != nil {
		d.Error = err.Error()
		s.render(w, r, http.StatusBadRequest, "audit", "Audit", d)
		return
	}
	if s.cfg.Audit != nil {
		f.Limit = auditPage
		if d.Entries, err = s.cfg.Audit.Audit(f); err != nil {
			s.failErr(w, r, err)
			return
		}
	}
	s.render(w, r, http.StatusOK, "audit", "Audit", d)
}

// downloadAudit answers the filtered audit as a file: JSON lines
// (format=jsonl) or CSV (format=csv).
func (s *Server) downloadAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format := q.Get("format")
	if format != "jsonl" && format != "csv" {
		s.failErr(w, r, errs.Invalid("format", "%q is not jsonl or csv", format))
		return
	}
	f, err := auditFilter(q)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	var entries []orders.AuditEntry
	for s.cfg.Audit != nil && len(entries) < auditMax {
		f.Limit = 1000
		page, err := s.cfg.Audit.Audit(f)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		entries = append(entries, page...)
		if len(page) < f.Limit {
			break
		}
		f.After = page[len(page)-1].Seq
	}
	w.Header().Set("Content-Disposition", `attachment; filename="outpost-audit.`+format+`"`)
	if format == "jsonl" {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, e := range entries {
			enc.Encode(e)
		}
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	cw.Write([]string{"seq", "time", "by", "role", "from", "action", "target", "detail", "status"})
	for _, e := range entries {
		cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339), e.By, e.Role, e.From,
			e.Action, e.Target, e.Detail, strconv.Itoa(e.Status)})
	}
	cw.Flush()
}
