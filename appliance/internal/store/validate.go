package store

import (
	"net"
	"net/netip"
	"regexp"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
)

// validName checks an object key: lowercase letters, digits, '.', '_' and
// '-', starting with a letter or digit, at most 63 characters.
func validName(field, v string) error {
	if v == "" {
		return errs.Invalid(field, "is required")
	}
	if !isName(v) {
		return errs.Invalid(field, "%q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", v)
	}
	return nil
}

func validHostname(field, v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 253 || !isHostname(v) {
		return errs.Invalid(field, "%q is not a valid hostname", v)
	}
	return nil
}

// isName reports whether v is 1-63 lowercase letters, digits, '.', '_'
// or '-', starting with a letter or digit: the regular expression
// ^[a-z0-9][a-z0-9._-]{0,62}$, by hand (every put of every object
// checks its key, twice: the regexp was a tenth of a machine put's
// instructions).
func isName(v string) bool {
	if len(v) == 0 || len(v) > 63 || !isLowerAlnum(v[0]) {
		return false
	}
	for i := 1; i < len(v); i++ {
		if c := v[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }

// isHostname reports whether v is dot-separated labels of 1-63 letters,
// digits and '-', none starting or ending with '-': the regular
// expression
// ^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$,
// by hand. The caller bounds the whole name's length.
func isHostname(v string) bool {
	for label := range strings.SplitSeq(v, ".") {
		n := len(label)
		if n == 0 || n > 63 || !isAlnum(label[0]) || !isAlnum(label[n-1]) {
			return false
		}
		for i := 1; i < n-1; i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// NormalizeMAC returns mac in the canonical lowercase colon form.
func NormalizeMAC(mac string) (string, error) {
	if isNormalMAC(mac) {
		return mac, nil // what the parse would give back: no copy
	}
	hw, err := net.ParseMAC(strings.TrimSpace(mac))
	if err != nil || len(hw) != 6 {
		return "", errs.Invalid("mac", "%q is not a 48-bit MAC address", mac)
	}
	return hw.String(), nil
}

// isNormalMAC reports whether mac is already in NormalizeMAC's form: six
// pairs of lowercase hex digits joined by colons. Machines and leases
// carry their MACs in that form once they are normalized, and every put
// checks them again.
func isNormalMAC(mac string) bool {
	if len(mac) != 17 {
		return false
	}
	for i := 0; i < len(mac); i++ {
		c := mac[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
		} else if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func validAddr(field, v string, required bool) error {
	if v == "" {
		if required {
			return errs.Invalid(field, "is required")
		}
		return nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return errs.Invalid(field, "%q is not an IPv4 address", v)
	}
	return nil
}

func validOneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return errs.Invalid(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$`)

// validTraceparent checks a W3C traceparent as internal/tracing's
// ValidTraceparent does (the store imports no tracing: it stores the
// string): empty (no trace) or version 00 with ids that are not zero.
func validTraceparent(field, tp string) error {
	if tp == "" {
		return nil
	}
	m := traceparentRE.FindStringSubmatch(tp)
	if m == nil {
		return errs.Invalid(field, "%.80q is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)", tp)
	}
	if strings.Trim(m[1], "0") == "" || strings.Trim(m[2], "0") == "" {
		return errs.Invalid(field, "%q has a zero trace or span id", tp)
	}
	return nil
}
