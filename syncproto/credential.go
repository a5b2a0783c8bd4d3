package syncproto

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Credential is a site's bearer token, which central gives when the site
// is created. It is never shown: String, GoString, Format (every verb),
// LogValue and MarshalJSON give "[redacted]" (or "" if it is empty), so
// a Hello printed, logged or marshalled with encoding/json hides it. Only
// Encode writes it, in the hello frame itself; string(c) is the token.
type Credential string

const redacted = "[redacted]"

func (c Credential) shown() string {
	if c == "" {
		return ""
	}
	return redacted
}

func (c Credential) String() string   { return c.shown() }
func (c Credential) GoString() string { return strconv.Quote(c.shown()) }

// Format writes "[redacted]" for every verb (quoted for %q and %#v).
func (c Credential) Format(f fmt.State, verb rune) {
	if verb == 'q' || verb == 'v' && f.Flag('#') {
		io.WriteString(f, strconv.Quote(c.shown()))
		return
	}
	io.WriteString(f, c.shown())
}

func (c Credential) LogValue() slog.Value { return slog.StringValue(c.shown()) }

func (c Credential) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(c.shown())), nil }
