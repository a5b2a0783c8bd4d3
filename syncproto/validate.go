package syncproto

import (
	"bytes"
	"encoding/json"
	"unicode"
	"unicode/utf8"
)

// validName checks a site id: 1 to 63 lowercase letters, digits, '.', '_'
// or '-', starting with a letter or digit (the appliance's names).
func validName(typ, field, v string) error {
	if v == "" {
		return invalid(typ, field, "is required")
	}
	ok := len(v) <= 63
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return invalid(typ, field, "%q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", clip(v))
	}
	return nil
}

// validToken checks a kind or an error code: 1 to 63 lowercase letters,
// digits or '_', starting with a letter.
func validToken(typ, field, v string) error {
	if v == "" {
		return invalid(typ, field, "is required")
	}
	ok := len(v) <= 63
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = 'a' <= c && c <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '_')
	}
	if !ok {
		return invalid(typ, field, "%q must be 1-63 lowercase letters, digits or '_', starting with a letter", clip(v))
	}
	return nil
}

// validKey checks an object's key: 1 to MaxKeySize bytes of UTF-8 with no
// control characters.
func validKey(typ, field, v string) error {
	switch {
	case v == "":
		return invalid(typ, field, "is required")
	case len(v) > MaxKeySize:
		return invalid(typ, field, "is %d bytes, more than the limit of %d", len(v), MaxKeySize)
	case !utf8.ValidString(v):
		return invalid(typ, field, "%q is not valid UTF-8", v)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return invalid(typ, field, "%q holds a control character", v)
		}
	}
	return nil
}

// validObject checks raw JSON that must be an object of at most max bytes.
func validObject(typ, field string, raw json.RawMessage, max int) error {
	switch {
	case len(raw) > max:
		return invalid(typ, field, "is %d bytes, more than the limit of %d", len(raw), max)
	case !json.Valid(raw):
		return invalid(typ, field, "is not valid JSON")
	case bytes.TrimLeft(raw, " \t\r\n")[0] != '{':
		return invalid(typ, field, "must be a JSON object")
	}
	return nil
}

// clip shortens a value quoted in an error message.
func clip(s string) string { return truncate(s, 64) }
