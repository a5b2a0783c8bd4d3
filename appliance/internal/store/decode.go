package store

import (
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
)

// DecodeStrict decodes one JSON value from r into v the way every Outpost
// input is read: an unknown field or a value of the wrong type is an
// Invalid error naming the field, never quoting the value (it may be a
// secret). Trailing data after the value is an error too.
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return errs.Invalid(te.Field, "wrong type: got %s, want %s", te.Value, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return errs.Invalid(f, "unknown field")
		case errors.Is(err, io.EOF):
			return errs.Invalid("", "the document is empty")
		}
		return errs.Invalid("", "not valid JSON: %v", err)
	}
	if dec.More() {
		return errs.Invalid("", "more than one JSON value")
	}
	return nil
}
