// Package errs is the domain error both sides of Outpost answer with: bad
// input, something not found, or a state that forbids a change. An Error
// is a plain value, so it survives the trip through a replicated log and
// a forwarded request, and its Message is safe to show an operator (no
// secrets, no internal detail); APIs send it as
// {"error": {"code", "message", "field"}}.
package errs

import (
	"errors"
	"fmt"
)

// Sentinels: a domain error matches the one of its code with errors.Is.
var (
	ErrInvalid  = errors.New("invalid")
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Error is a domain error.
type Error struct {
	Code    string `json:"code"`            // CodeInvalid, CodeNotFound or CodeConflict
	Field   string `json:"field,omitempty"` // the field at fault, for CodeInvalid
	Message string `json:"message"`
}

// Error codes.
const (
	CodeInvalid  = "invalid"
	CodeNotFound = "not_found"
	CodeConflict = "conflict"
)

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Is makes errors.Is(err, ErrNotFound) and friends true for domain errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Code == CodeInvalid
	case ErrNotFound:
		return e.Code == CodeNotFound
	case ErrConflict:
		return e.Code == CodeConflict
	}
	return false
}

// Invalid reports bad input in field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports that no object of kind has key.
func NotFound(kind, key string) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", kind, key)}
}

// Conflict reports a change that the current state forbids.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err's domain error, if it has one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
