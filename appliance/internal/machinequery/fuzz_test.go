package machinequery_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outposthq/outpost/appliance/internal/machinequery"
)

// FuzzParse feeds Parse arbitrary queries: it never panics, a refusal is
// an *Error naming a term of the query at its column, and a query it
// accepts can be matched.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "web", "mac:02:00:*", "ip:198.18.1.0/24", "ip:::1", "hostname:web-*", "state:failed,provisioning",
		"-tag:gpu", "!state:ready", `tag:"odd tag"`, `hostname:"we\"b"`, `"`, "-", "a:b", "0a:bb", "workflow:none",
		"tag:a,,b", `"\`, "*", "**:*",
	} {
		f.Add(seed)
	}
	machines, leases, workflows := fleet()
	c := machinequery.NewCompanions(leases, workflows, t0)
	f.Fuzz(func(t *testing.T, q string) {
		parsed, err := machinequery.Parse(q)
		if err != nil {
			var e *machinequery.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v, not an *Error", q, err)
			}
			if len(q) <= machinequery.MaxLen && (e.Column < 1 || !strings.HasPrefix(q[e.Column-1:], e.Term)) {
				t.Fatalf("Parse(%q): error %v names no term of the query", q, e)
			}
			if e.Reason == "" {
				t.Fatalf("Parse(%q): error without a reason", q)
			}
			return
		}
		for _, m := range machinequery.Filter(parsed, machines, c) {
			if !utf8.ValidString(m.ID) {
				t.Fatalf("matched a machine with a bad id")
			}
		}
	})
}
