package machinequery

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// States are the values of state:, the machine states.
var States = []string{
	string(store.StateDiscovered), string(store.StateReady), string(store.StateProvisioning),
	string(store.StateProvisioned), string(store.StateFailed), string(store.StateDeprovisioning),
}

// WorkflowStates are the values of workflow:, a workflow's statuses and
// "none" for a machine without one.
var WorkflowStates = []string{
	string(workflow.Pending), string(workflow.Running), string(workflow.Succeeded),
	string(workflow.Failed), string(workflow.TimedOut), NoWorkflow,
}

// NoWorkflow is the workflow state of a machine that has no workflow (or
// whose workflow is gone).
const NoWorkflow = "none"

// Subject is a machine with what a query reads besides it.
type Subject struct {
	Machine *store.Machine
	// Addrs are the addresses its current leases hold (those its
	// interfaces reserve are read from the machine).
	Addrs []netip.Addr
	// Workflow is its current workflow's status, or NoWorkflow.
	Workflow string
}

// matcher is one value of a term.
type matcher func(*Subject) bool

// Match reports whether s matches every term of q.
func (q *Query) Match(s *Subject) bool {
	for _, t := range q.terms {
		if slices.ContainsFunc(t.any, func(m matcher) bool { return m(s) }) == t.neg {
			return false
		}
	}
	return true
}

// compile makes the matcher of one value of a field, or says what is
// wrong with the value.
func compile(field, v string) (matcher, string) {
	switch field {
	case "mac":
		return macMatcher(v)
	case "ip":
		return ipMatcher(v)
	case "hostname":
		g := newGlob(v)
		return func(s *Subject) bool { return g.match(s.Machine.Hostname) }, ""
	case "id":
		g := newGlob(v)
		return func(s *Subject) bool { return g.match(s.Machine.ID) }, ""
	case "tag":
		g := newGlob(v)
		return func(s *Subject) bool { return slices.ContainsFunc(s.Machine.Tags, g.match) }, ""
	case "state":
		return oneOf(v, States, func(s *Subject) string { return string(s.Machine.State) })
	case "workflow":
		return oneOf(v, WorkflowStates, func(s *Subject) string { return s.Workflow })
	}
	return nil, "no such field" // Fields lists only the fields above.
}

// oneOf matches a value of a closed set.
func oneOf(v string, set []string, get func(*Subject) string) (matcher, string) {
	v = strings.ToLower(v)
	if !slices.Contains(set, v) {
		return nil, fmt.Sprintf("%q is not one of %s", v, strings.Join(set, ", "))
	}
	return func(s *Subject) bool { return get(s) == v }, ""
}

func macMatcher(v string) (matcher, string) {
	v = strings.ReplaceAll(strings.ToLower(v), "-", ":")
	if !strings.Contains(v, "*") {
		mac, err := store.NormalizeMAC(v)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a MAC address (a pattern needs a *, as in 02:00:*)", v)
		}
		v = mac
	} else if !macLike(v) {
		return nil, fmt.Sprintf("%q is not a MAC pattern (hex digits, colons and *)", v)
	}
	g := newGlob(v)
	return func(s *Subject) bool {
		return slices.ContainsFunc(s.Machine.Interfaces, func(nic store.Interface) bool { return g.match(nic.MAC) })
	}, ""
}

func ipMatcher(v string) (matcher, string) {
	var in func(netip.Addr) bool
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Sprintf("%q is not an address prefix (as in 198.18.1.0/24)", v)
		}
		p = p.Masked()
		in = p.Contains
	} else {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Sprintf("%q is not an address or prefix", v)
		}
		in = func(b netip.Addr) bool { return b == a }
	}
	return func(s *Subject) bool {
		if slices.ContainsFunc(s.Addrs, in) {
			return true
		}
		return slices.ContainsFunc(s.Machine.Interfaces, func(nic store.Interface) bool {
			a, err := netip.ParseAddr(nic.IP)
			return err == nil && in(a)
		})
	}, ""
}

// freeWord matches a substring (or with a *, a pattern) of the hostname,
// the id or a MAC.
func freeWord(w string) matcher {
	w = strings.ToLower(w)
	if !strings.Contains(w, "*") {
		w = "*" + w + "*"
	}
	g := newGlob(w)
	return func(s *Subject) bool {
		m := s.Machine
		return g.match(m.Hostname) || g.match(m.ID) ||
			slices.ContainsFunc(m.Interfaces, func(nic store.Interface) bool { return g.match(nic.MAC) })
	}
}

// glob is a case-insensitive pattern in which * matches any run of
// characters.
type glob struct {
	parts []string // the pattern split at its *s, lowercased
}

func newGlob(p string) glob { return glob{parts: strings.Split(strings.ToLower(p), "*")} }

func (g glob) match(s string) bool {
	s = strings.ToLower(s) // no copy when s has no upper case
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(g.parts) == 1 {
		return s == first
	}
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, mid := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, last)
}
