package workflow

import (
	"errors"
	"fmt"
)

// Errors of the transitions. They are wrapped with the detail, so test them
// with errors.Is. An error means the report changed nothing; it is final:
// sending the same report again gets the same error.
var (
	// ErrInvalid is the class of every *FieldError.
	ErrInvalid = errors.New("workflow: invalid")
	// ErrUnknownAction: the plan has no action of that name.
	ErrUnknownAction = errors.New("workflow: unknown action")
	// ErrFinished: the workflow has succeeded, failed or timed out.
	ErrFinished = errors.New("workflow: workflow is finished")
	// ErrNotReady: the action cannot start yet (or any more): it is not
	// pending, a need is not done, its backoff has not elapsed or the
	// workflow's deadline has passed.
	ErrNotReady = errors.New("workflow: action is not ready")
	// ErrNotRunning: the attempt reported on is not running.
	ErrNotRunning = errors.New("workflow: action is not running")
	// ErrConflict: the report contradicts what is recorded, such as a
	// success for an attempt that already timed out.
	ErrConflict = errors.New("workflow: report conflicts with the recorded result")
)

// FieldError is bad input, naming the field at fault as the API reports
// it, such as "actions[2].needs[0]". Its Message is safe to show an
// operator.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Is makes errors.Is(err, ErrInvalid) true for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
