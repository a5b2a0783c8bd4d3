package syncproto

import (
	"fmt"
	"unicode/utf8"
)

// Report is what a site says of itself, for central's fleet overview:
// the release its leader runs, the health of its cluster as its leader
// sees it, the URL of its console, and its newest event's sequence. It
// is optional in a hello and a heartbeat (a site of a release before it
// sends none); a sender clips it to the limits (Clip), and a report past
// them is bad_message.
type Report struct {
	// Appliance is the release of the reporting node (the leader).
	Appliance string `json:"appliance,omitempty"`
	// Nodes, Voters and Healthy count the cluster's members, the voting
	// ones and those the leader hears from; Leader names the leader.
	Nodes   int    `json:"nodes,omitempty"`
	Voters  int    `json:"voters,omitempty"`
	Healthy int    `json:"healthy,omitempty"`
	Leader  string `json:"leader,omitempty"`
	// Console is the URL of the site's console ("" if it has none
	// configured).
	Console string `json:"console,omitempty"`
	// Problems says what is wrong, in words, at most MaxReportProblems.
	Problems []string `json:"problems,omitempty"`
	// LastSeq is the sequence of the site's newest event (0: none).
	LastSeq uint64 `json:"last_seq,omitempty"`
}

// Limits of a report: it rides in a hello, which central reads before it
// knows the site (at most a few KiB).
const (
	MaxReportProblems = 8
	maxReportText     = 256
	maxReportURL      = 1024
)

// Clip returns the report cut to the limits: the first
// MaxReportProblems problems, each text cut (at a rune) to its limit.
func (r *Report) Clip() *Report {
	if r == nil {
		return nil
	}
	c := *r
	c.Appliance, c.Leader = clipText(c.Appliance, maxReportText), clipText(c.Leader, maxReportText)
	if len(c.Console) > maxReportURL {
		c.Console = "" // a URL cut short is no URL
	}
	c.Problems = nil
	for i, p := range r.Problems {
		if i == MaxReportProblems {
			break
		}
		c.Problems = append(c.Problems, clipText(p, maxReportText))
	}
	return &c
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// validate checks the report of a message of type typ.
func (r *Report) validate(typ string) error {
	if r == nil {
		return nil
	}
	switch {
	case r.Nodes < 0 || r.Voters < 0 || r.Healthy < 0:
		return invalid(typ, "report.nodes", "the counts must not be negative")
	case len(r.Problems) > MaxReportProblems:
		return invalid(typ, "report.problems", "holds %d problems, more than the limit of %d", len(r.Problems), MaxReportProblems)
	case len(r.Console) > maxReportURL:
		return invalid(typ, "report.console", "is longer than %d bytes", maxReportURL)
	}
	for field, s := range map[string]string{"appliance": r.Appliance, "leader": r.Leader} {
		if len(s) > maxReportText {
			return invalid(typ, "report."+field, "is longer than %d bytes", maxReportText)
		}
	}
	for i, p := range r.Problems {
		if len(p) > maxReportText {
			return invalid(typ, fmt.Sprintf("report.problems[%d]", i), "is longer than %d bytes", maxReportText)
		}
	}
	return nil
}
