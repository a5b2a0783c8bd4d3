package machinequery

import (
	"fmt"
	"slices"
	"strings"
)

// MaxLen bounds a query's length in bytes.
const MaxLen = 4096

// Fields are the names a term may have before its colon at a site.
var Fields = []string{"mac", "ip", "hostname", "id", "state", "workflow", "tag"}

// FleetFields are the names a term may have before its colon at
// central: a site's fields and the fleet's (ParseFleet).
var FleetFields = append(Fields[:len(Fields):len(Fields)], "site", "label", "order", "order-status")

// Query is a parsed query: a machine matches it when it matches every
// term. The zero Query (and Parse("")) matches every machine.
type Query struct {
	terms []term
	// fields are the fields the query may name.
	fields []string
	// needsAddrs and needsWorkflows say which of the machines'
	// companions matching reads.
	needsAddrs, needsWorkflows bool
}

// Empty reports whether the query has no term: it matches every
// machine.
func (q *Query) Empty() bool { return len(q.terms) == 0 }

// NeedsAddrs reports whether matching reads Subject.Addrs (the query has
// an ip term).
func (q *Query) NeedsAddrs() bool { return q.needsAddrs }

// NeedsWorkflows reports whether matching reads Subject.Workflow (the
// query has a workflow term).
func (q *Query) NeedsWorkflows() bool { return q.needsWorkflows }

// term is one term of a query: a machine matches when one of its
// matchers does, or with neg when none does.
type term struct {
	neg bool
	any []matcher
}

// Error is a query Parse refused: the term at fault, where it starts and
// why.
type Error struct {
	// Column is where the term starts in the query, counted in bytes
	// from 1.
	Column int
	// Term is the term as written.
	Term string
	// Reason says what is wrong with it.
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("term %q at column %d: %s", e.Term, e.Column, e.Reason)
}

// Parse reads q, a query of a site's machines (Fields). An empty (or
// blank) query matches every machine.
func Parse(q string) (*Query, error) { return parse(q, Fields) }

// ParseFleet reads q, a query of the fleet's machines at central
// (FleetFields): a site's query with site:, label:, order: and
// order-status: terms.
func ParseFleet(q string) (*Query, error) { return parse(q, FleetFields) }

func parse(q string, fields []string) (*Query, error) {
	if len(q) > MaxLen {
		return nil, &Error{Column: 1, Term: q[:32] + "...", Reason: fmt.Sprintf("the query is %d bytes long, over the limit of %d", len(q), MaxLen)}
	}
	query := &Query{fields: fields}
	for pos := 0; ; {
		for pos < len(q) && isSpace(q[pos]) {
			pos++
		}
		if pos == len(q) {
			return query, nil
		}
		end, ok := termEnd(q, pos)
		raw := q[pos:end]
		if !ok {
			return nil, &Error{Column: pos + 1, Term: raw, Reason: "a quote is not closed"}
		}
		t, reason := query.parseTerm(raw)
		if reason != "" {
			return nil, &Error{Column: pos + 1, Term: raw, Reason: reason}
		}
		query.terms = append(query.terms, t)
		pos = end
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// termEnd returns where the term starting at pos ends: at the first
// space outside quotes, or the query's end; ok is false if a quote is
// left open.
func termEnd(q string, pos int) (end int, ok bool) {
	quoted := false
	for i := pos; i < len(q); i++ {
		switch c := q[i]; {
		case quoted && c == '\\' && i+1 < len(q):
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && isSpace(c):
			return i, true
		}
	}
	return len(q), !quoted
}

// parseTerm reads one term, or says what is wrong with it.
func (q *Query) parseTerm(raw string) (term, string) {
	var t term
	body := raw
	if body[0] == '-' || body[0] == '!' {
		t.neg, body = true, body[1:]
		if body == "" {
			return t, fmt.Sprintf("%q negates nothing", raw[:1])
		}
	}
	key, rest, keyed := cutUnquoted(body, ':')
	if keyed && slices.Contains(q.fields, strings.ToLower(key)) {
		return q.parseField(t, strings.ToLower(key), rest)
	}
	if keyed && !macLike(body) {
		return t, fmt.Sprintf("unknown field %q (fields: %s)", key, strings.Join(q.fields, ", "))
	}
	word := unquote(body)
	if word == "" {
		return t, "the word is empty"
	}
	t.any = []matcher{freeWord(word)}
	return t, ""
}

// parseField reads a field term's comma-separated values.
func (q *Query) parseField(t term, field, values string) (term, string) {
	for _, v := range splitUnquoted(values, ',') {
		if v == "" {
			return t, fmt.Sprintf("%s: a value is empty", field)
		}
		m, reason := compile(field, v)
		if reason != "" {
			return t, field + ": " + reason
		}
		t.any = append(t.any, m)
	}
	q.needsAddrs = q.needsAddrs || field == "ip"
	q.needsWorkflows = q.needsWorkflows || field == "workflow"
	return t, ""
}

// macLike reports whether s could be a MAC or part of one.
func macLike(s string) bool {
	return s != "" && strings.Trim(strings.ToLower(s), "0123456789abcdef:-*") == ""
}

// cutUnquoted cuts s around the first sep outside quotes.
func cutUnquoted(s string, sep byte) (before, after string, found bool) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\' && i+1 < len(s):
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// splitUnquoted splits s at every sep outside quotes and unquotes each
// part.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	for {
		part, rest, found := cutUnquoted(s, sep)
		out = append(out, unquote(part))
		if !found {
			return out
		}
		s = rest
	}
}

// unquote drops s's quotes and resolves the escapes within them.
func unquote(s string) string {
	if !strings.Contains(s, `"`) {
		return s
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
