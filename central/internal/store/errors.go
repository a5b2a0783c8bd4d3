package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Domain errors are *Error values that match these with
// errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
	ErrInvalid  = errors.New("store: invalid")
	ErrCorrupt  = errors.New("store: corrupt data file")
	ErrClosed   = errors.New("store: closed")
)

// Error is a domain error: bad input or a state that forbids the change.
// Its Message is safe to show an operator.
type Error struct {
	Code    string `json:"code"`            // "invalid", "not_found" or "conflict"
	Field   string `json:"field,omitempty"` // the field at fault, for "invalid"
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
