package store

import (
	"encoding/json"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
)

// AuditEntry is one change asked of central's API, done or refused: who
// asked (a token's name and role, the client's address), what and to
// what, and the HTTP status it was answered with. Detail never holds a
// secret (the API writes it: no credential, token, BMC password or user
// data, only its size).
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	By     string    `json:"by"`
	Role   string    `json:"role,omitempty"`
	From   string    `json:"from,omitempty"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Status int       `json:"status"`
}

// AuditFilter selects audit entries: by token name, action and target
// (exactly, or a prefix with a trailing '*'), time (Since included,
// Until excluded), after a sequence, at most Limit.
type AuditFilter struct {
	By, Action, Target string
	Since, Until       time.Time
	After              uint64
	Limit              int
}

// Limits of the audit.
const (
	// keepAudit is how many of the latest entries the audit keeps: an
	// append past it forgets the oldest, so the bucket stays bounded
	// (about 300 bytes an entry).
	keepAudit = 200_000
	// maxAuditDetail bounds an entry's detail and target.
	maxAuditDetail = 1024
)

// check checks an entry as it is proposed.
func (e *AuditEntry) check() error {
	switch {
	case e.By == "":
		return errs.Invalid("by", "is required")
	case e.Action == "":
		return errs.Invalid("action", "is required")
	case e.Time.IsZero():
		return errs.Invalid("time", "is required")
	}
	e.Detail = clipText(e.Detail, maxAuditDetail)
	e.Target = clipText(e.Target, maxAuditDetail)
	return nil
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}

// RecordAudit appends e (its Time set, or now) to the audit and returns
// its sequence.
func (d *DB) RecordAudit(e AuditEntry) (uint64, error) {
	if e.Time.IsZero() {
		e.Time = d.now().UTC()
	}
	e.Seq = 0
	if err := e.check(); err != nil {
		return 0, err
	}
	return d.exec(cmdRecordAudit, &recordAuditPayload{Entry: &e})
}

// appendAudit appends e at the next sequence, forgetting the entry
// keepAudit before it, and returns the sequence.
func appendAudit(tx *txn, e *AuditEntry) (uint64, error) {
	b := tx.Bucket(bucketAudit)
	last, _ := b.Cursor().Last()
	e.Seq = readU64(last) + 1
	if e.Seq > keepAudit {
		if err := b.Delete(u64(e.Seq - keepAudit)); err != nil {
			return 0, err
		}
	}
	tx.wake("audit")
	return e.Seq, put(b, u64(e.Seq), e)
}

// applyRecordAudit appends an entry and returns its sequence.
func applyRecordAudit(tx *txn, p *recordAuditPayload) (any, error) {
	if p.Entry == nil {
		return nil, errs.Invalid("entry", "is required")
	}
	return appendAudit(tx, p.Entry)
}

// Audit returns the entries f selects, oldest first.
func (d *DB) Audit(f AuditFilter) ([]AuditEntry, error) {
	out := []AuditEntry{}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	err := d.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(u64(f.After + 1)); k != nil && len(out) < f.Limit; k, v = c.Next() {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return ErrCorrupt
			}
			if f.matches(&e) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

func (f *AuditFilter) matches(e *AuditEntry) bool {
	switch {
	case f.By != "" && e.By != f.By,
		f.Action != "" && !globMatch(f.Action, e.Action),
		f.Target != "" && !globMatch(f.Target, e.Target),
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	}
	return true
}

// globMatch matches s exactly, or by prefix if pattern ends in '*'.
func globMatch(pattern, s string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return s == pattern
}
