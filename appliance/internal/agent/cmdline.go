package agent

import (
	"strings"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
)

// Params are the agent's kernel command-line parameters (agentproto.Param*).
type Params struct {
	URL     string // ParamURL: the appliance's boot HTTP base URL
	Token   string // ParamToken: the credential
	Machine string // ParamMachine: the machine's id, absent in discovery
	MAC     string // ParamMAC: the MAC the machine booted from
	Mode    string // ParamMode: agentproto.ModeDiscover or ""
	// Traceparent is ParamTraceparent: the W3C traceparent of the
	// workflow's trace, which the agent's spans descend from ("" if
	// none).
	Traceparent string
}

// Discover reports whether the installer was booted in discovery mode.
func (p Params) Discover() bool { return p.Mode == agentproto.ModeDiscover }

// ParseCmdline reads the agent's parameters from a kernel command line.
// Words are separated by white space; a value may be double-quoted
// (key="a b"). Unknown parameters are ignored; the last of a repeated one
// wins, as in the kernel.
func ParseCmdline(s string) Params {
	var p Params
	for _, w := range splitCmdline(s) {
		k, v, _ := strings.Cut(w, "=")
		switch k {
		case agentproto.ParamURL:
			p.URL = strings.TrimRight(v, "/")
		case agentproto.ParamToken:
			p.Token = v
		case agentproto.ParamMachine:
			p.Machine = v
		case agentproto.ParamMAC:
			p.MAC = strings.ToLower(v)
		case agentproto.ParamMode:
			p.Mode = v
		case agentproto.ParamTraceparent:
			p.Traceparent = v
		}
	}
	return p
}

// splitCmdline splits a command line into words, removing the double
// quotes that let a word hold spaces.
func splitCmdline(s string) []string {
	var (
		words  []string
		cur    strings.Builder
		quoted bool
		inWord bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
