package syncproto

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. A receiver treats a code it does not know like
// CodeInternal: a later version may add codes.
const (
	// CodeUnauthorized: the site is unknown or its credential is wrong
	// (central says no more, and changes nothing). The site retries with
	// a long backoff: an operator has to fix its credential.
	CodeUnauthorized = "unauthorized"
	// CodeIncompatibleVersion: the hello's versions and central's have
	// none in common; the message names both ranges. The site retries
	// with a long backoff: one side has to be upgraded.
	CodeIncompatibleVersion = "incompatible_version"
	// CodeBadMessage: a frame that does not decode or validate, or a
	// message that breaks the rules (out of order, from the wrong side).
	// It is a bug in the sender; the site reconnects with backoff.
	CodeBadMessage = "bad_message"
	// CodeConflict: the site's history and central's disagree in a way
	// only an operator can resolve (see Hello.CheckHistory).
	CodeConflict = "conflict"
	// CodeReplaced: central accepted a newer connection of the same site
	// and ends this one. After a leader change the old leader's session
	// may linger; the site reconnects only while it is still the leader.
	CodeReplaced = "replaced"
	// CodeUnavailable: central is shutting down or overloaded; the site
	// reconnects with backoff.
	CodeUnavailable = "unavailable"
	// CodeInternal: anything else; the site reconnects with backoff.
	CodeInternal = "internal"
)

// Error is the error message, sent by either side before it closes the
// connection, and the error that Decode, Encode, Validate and the
// helpers of this package return (with CodeBadMessage for a message that
// breaks the rules). Message is safe to show to an operator: it never
// holds a credential, nor any detail that side keeps to itself. Field,
// when set, is the path of the offending field in the body
// ("changes[3].object").
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (*Error) Type() string { return TypeError }
func (*Error) isMessage()   {}

func (e *Error) Error() string { return "syncproto: " + e.Code + ": " + e.Message }

// Validate checks the error message.
func (e *Error) Validate() error {
	if err := validToken(TypeError, "code", e.Code); err != nil {
		return err
	}
	switch {
	case e.Message == "":
		return invalid(TypeError, "message", "is required")
	case len(e.Message) > MaxErrorMessage:
		return invalid(TypeError, "message", "is %d bytes, more than the limit of %d", len(e.Message), MaxErrorMessage)
	case len(e.Field) > MaxKeySize:
		return invalid(TypeError, "field", "is %d bytes, more than the limit of %d", len(e.Field), MaxKeySize)
	}
	return nil
}

// Errorf returns an Error with code and a message safe to show, cut to
// MaxErrorMessage bytes.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: truncate(fmt.Sprintf(format, args...), MaxErrorMessage)}
}

// ErrorFor returns the error message to send for err: err's own *Error
// if it has one, else an internal error that says nothing of err (its
// text may hold what the sender keeps to itself; log it instead). It
// returns nil for a nil err.
func ErrorFor(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Message = truncate(c.Message, MaxErrorMessage)
		if c.Validate() == nil {
			return &c
		}
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// CodeOf returns the code of the *Error in err's chain, or "" if it has
// none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// invalid returns the CodeBadMessage error of a message of type typ
// whose field breaks a rule.
func invalid(typ, field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	switch {
	case typ != "" && field != "":
		msg = typ + "." + field + ": " + msg
	case typ != "" || field != "":
		msg = typ + field + ": " + msg
	}
	return &Error{Code: CodeBadMessage, Field: field, Message: truncate(msg, MaxErrorMessage)}
}

// truncate cuts s to at most n bytes, dropping a rune cut in half.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "..."
	return strings.ToValidUTF8(s[:n-len(more)], "") + more
}
