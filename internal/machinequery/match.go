package machinequery

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// States are the values of state:, the machine states.
var States = []string{"discovered", "ready", "provisioning", "provisioned", "failed", "deprovisioning"}

// WorkflowStates are the values of workflow:, a workflow's statuses and
// "none" for a machine without one.
var WorkflowStates = []string{"pending", "running", "succeeded", "failed", "timed_out", None}

// OrderStatuses are the values of order-status:, the statuses of a
// machine's last order at central and "none" for a machine without one.
var OrderStatuses = []string{"placed", "delivered", "waiting", "running", "succeeded", "failed", None}

// None is the workflow state of a machine that has no workflow (or whose
// workflow is gone), and the order status of one that has no order.
const None = "none"

// NoWorkflow is None, by its older name.
const NoWorkflow = None

// Subject is a machine as a query reads it: what it is, with what a
// query reads besides it.
type Subject struct {
	ID       string
	Hostname string
	// MACs are its interfaces' MACs, normalized (lowercase, colons).
	MACs []string
	// Addrs are the addresses its interfaces reserve and its current
	// leases hold (read only by a query that NeedsAddrs).
	Addrs []netip.Addr
	Tags  []string
	State string
	// Workflow is its current workflow's status, or None (read only by
	// a query that NeedsWorkflows).
	Workflow string

	// At central: its site, the site's labels, its last order's key
	// and status (None if it has none).
	Site        string
	Labels      map[string]string
	Order       string
	OrderStatus string
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
		return func(s *Subject) bool { return g.match(s.Hostname) }, ""
	case "id":
		g := newGlob(v)
		return func(s *Subject) bool { return g.match(s.ID) }, ""
	case "tag":
		g := newGlob(v)
		return func(s *Subject) bool { return slices.ContainsFunc(s.Tags, g.match) }, ""
	case "state":
		return oneOf(v, States, func(s *Subject) string { return s.State })
	case "workflow":
		return oneOf(v, WorkflowStates, func(s *Subject) string { return s.Workflow })
	case "site":
		g := newGlob(v)
		return func(s *Subject) bool { return g.match(s.Site) }, ""
	case "label":
		return labelMatcher(v)
	case "order":
		g := newGlob(v)
		return func(s *Subject) bool { return s.Order != "" && g.match(s.Order) }, ""
	case "order-status":
		return oneOf(v, OrderStatuses, func(s *Subject) string {
			if s.OrderStatus == "" {
				return None
			}
			return s.OrderStatus
		})
	}
	return nil, "no such field" // FleetFields lists only the fields above.
}

// oneOf matches a value of a closed set.
func oneOf(v string, set []string, get func(*Subject) string) (matcher, string) {
	v = strings.ToLower(v)
	if !slices.Contains(set, v) {
		return nil, fmt.Sprintf("%q is not one of %s", v, strings.Join(set, ", "))
	}
	return func(s *Subject) bool { return get(s) == v }, ""
}

// labelMatcher matches a label of the machine's site: key=value (the
// value a pattern), or key alone for any value.
func labelMatcher(v string) (matcher, string) {
	key, value, hasValue := strings.Cut(v, "=")
	if key == "" {
		return nil, fmt.Sprintf("%q names no label (label:key=value, or label:key)", v)
	}
	key = strings.ToLower(key)
	g := newGlob(value)
	return func(s *Subject) bool {
		got, ok := s.Labels[key]
		return ok && (!hasValue || g.match(got))
	}, ""
}

// NormalizeMAC returns a 48-bit MAC in its normal form (lowercase,
// colons), or an error.
func NormalizeMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(mac))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not a 48-bit MAC address", mac)
	}
	return hw.String(), nil
}

func macMatcher(v string) (matcher, string) {
	v = strings.ReplaceAll(strings.ToLower(v), "-", ":")
	if !strings.Contains(v, "*") {
		mac, err := NormalizeMAC(v)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a MAC address (a pattern needs a *, as in 02:00:*)", v)
		}
		v = mac
	} else if !macLike(v) {
		return nil, fmt.Sprintf("%q is not a MAC pattern (hex digits, colons and *)", v)
	}
	g := newGlob(v)
	return func(s *Subject) bool { return slices.ContainsFunc(s.MACs, g.match) }, ""
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
	return func(s *Subject) bool { return slices.ContainsFunc(s.Addrs, in) }, ""
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
		return g.match(s.Hostname) || g.match(s.ID) || slices.ContainsFunc(s.MACs, g.match)
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
