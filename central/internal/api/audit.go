package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// The audit. Every request of a token holder that may change something
// (any method but GET, HEAD and OPTIONS) is recorded once it is
// answered, done or refused (403 included): the token's name and role,
// the client's address, the action (named after the route: order.place,
// site.create, image.put...), its target, a detail the handler may add,
// and the status. Nothing of the body is recorded but what a handler
// chooses to say: never a credential, a token, a BMC password or user
// data (its size at most). A request without a valid token (401) is not
// recorded: it has no actor, and recording it would let anyone write to
// the log. A handler that records its change and its entry in one apply
// (orders) marks the note recorded, so that no second entry is written.

// auditNote is what a handler adds to its request's audit entry.
type auditNote struct {
	target, detail string
	// recorded says the handler recorded the entry with its change.
	recorded bool
}

type auditKey struct{}

// noteOf is the request's audit note (a throwaway one outside audited).
func noteOf(r *http.Request) *auditNote {
	if n, ok := r.Context().Value(auditKey{}).(*auditNote); ok {
		return n
	}
	return &auditNote{}
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// audited records the audit entry of every request that may change
// something, once next has answered it.
func (s *Server) audited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		n := &auditNote{}
		r = r.WithContext(context.WithValue(r.Context(), auditKey{}, n))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r) // the mux sets r.Pattern and the path values
		if n.recorded {
			return
		}
		e := s.auditEntry(r, n.target, n.detail, sw.status)
		if _, err := s.db.RecordAudit(e); err != nil {
			s.log.Error("audit entry not recorded", "action", e.Action, "target", e.Target, "by", e.By, "status", e.Status, "err", err)
		}
	})
}

// auditEntry is the entry of request r: target defaults to the path.
func (s *Server) auditEntry(r *http.Request, target, detail string, status int) store.AuditEntry {
	c, _ := httpapi.CallerOf(r.Context())
	if target == "" {
		target = strings.TrimPrefix(r.URL.Path, "/v1/")
	}
	if status == 0 {
		status = http.StatusOK
	}
	return store.AuditEntry{Time: s.now().UTC(), By: c.Name, Role: string(c.Role), From: clientAddr(r),
		Action: auditAction(r.Method, r.Pattern), Target: target, Detail: detail, Status: status}
}

// clientAddr is the client's address, without its port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// auditActions names the actions whose route does not say them plainly.
var auditActions = map[string]string{
	"POST /v1/orders":                      "order.place",
	"POST /v1/orders/preview":              "order.preview",
	"POST /v1/sites":                       "site.create",
	"PUT /v1/sites/{site}/labels":          "site.labels",
	"DELETE /v1/sites/{site}/events":       "site.events_reset",
	"POST /v1/artifacts":                   "artifact.upload",
	"POST /v1/artifacts/register":          "artifact.register",
	"POST /v1/tokens":                      "token.create",
	"POST /v1/cluster/key":                 "cluster.key",
	"POST /v1/cluster/members":             "cluster.member_add",
	"DELETE /v1/cluster/members/{id}":      "cluster.member_remove",
	"POST /v1/cluster/ca/rotate":           "cluster.ca_rotate",
	"PUT /v1/sites/{site}/orders/{key}":    "order.put",
	"PUT /v1/sites/{site}/images/{key}":    "site.image.put",
	"DELETE /v1/sites/{site}/images/{key}": "site.image.delete",
}

// auditAction names the action of a request by its route: the table's
// name, or the last word of the path (singular) and the method's verb
// (order.delete, image.put); a request no route serves is "unknown".
func auditAction(method, pattern string) string {
	if a, ok := auditActions[pattern]; ok {
		return a
	}
	_, path, _ := strings.Cut(pattern, " ")
	noun := ""
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg != "v1" && !strings.HasPrefix(seg, "{") {
			noun = seg
		}
	}
	if noun == "" || path == "/" {
		return "unknown"
	}
	verb := map[string]string{http.MethodPut: "put", http.MethodPost: "create", http.MethodDelete: "delete", http.MethodPatch: "update"}[method]
	if verb == "" {
		verb = strings.ToLower(method)
	}
	return strings.TrimSuffix(noun, "s") + "." + verb
}

// maxAuditPage is the most entries one answer of GET /v1/audit holds; a
// download pages through them all.
const maxAuditPage = 1000

// listAudit answers the audit entries the query selects (by, action,
// target: exact or a prefix ending in '*'; since, until: RFC 3339;
// after, limit), oldest first, as JSON, or a download of every one
// (format=jsonl or csv).
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	f, format, err := auditQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if format == "json" {
		entries, err := s.orders.Audit(f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"entries": entries})
		return
	}
	s.downloadAudit(w, r, f, format)
}

// auditQuery reads the filter and format of GET /v1/audit.
func auditQuery(r *http.Request) (orders.AuditFilter, string, error) {
	q := r.URL.Query()
	f := orders.AuditFilter{By: q.Get("by"), Action: q.Get("action"), Target: q.Get("target"), Limit: 100}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339, v); err != nil {
				return f, "", errs.Invalid(name, "is not an RFC 3339 time (2026-12-07T06:00:00Z)")
			}
		}
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return f, "", errs.Invalid("after", "is not a sequence number")
		}
		f.After = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditPage {
			return f, "", errs.Invalid("limit", "must be 1 to %d", maxAuditPage)
		}
		f.Limit = n
	}
	format := q.Get("format")
	switch format {
	case "":
		format = "json"
	case "json", "jsonl", "csv":
	default:
		return f, "", errs.Invalid("format", "%q is not one of json, jsonl, csv", format)
	}
	return f, format, nil
}

// downloadAudit streams every entry f selects after f.After, page by
// page, as JSON lines or CSV.
func (s *Server) downloadAudit(w http.ResponseWriter, r *http.Request, f orders.AuditFilter, format string) {
	f.Limit = maxAuditPage
	first, err := s.orders.Audit(f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctype := map[string]string{"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}[format]
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="outpost-audit.`+format+`"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	cw := csv.NewWriter(w)
	enc := json.NewEncoder(w)
	if format == "csv" {
		_ = cw.Write([]string{"seq", "time", "by", "role", "from", "action", "target", "detail", "status"})
	}
	for page := first; len(page) > 0; {
		for _, e := range page {
			if format == "jsonl" {
				if err := enc.Encode(e); err != nil {
					return
				}
				continue
			}
			_ = cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339Nano), cell(e.By), cell(e.Role),
				cell(e.From), cell(e.Action), cell(e.Target), cell(e.Detail), strconv.Itoa(e.Status)})
		}
		cw.Flush()
		if r.Context().Err() != nil {
			return
		}
		f.After = page[len(page)-1].Seq
		if page, err = s.orders.Audit(f); err != nil {
			s.log.Error("audit download cut short", "err", err)
			return
		}
	}
}

// cell defuses a CSV cell a spreadsheet would read as a formula.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
