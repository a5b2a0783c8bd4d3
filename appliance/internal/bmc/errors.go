package bmc

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// What failed. An *Error wraps one of these, or the caller's context
// error, or none when the failure is of no known kind.
var (
	// ErrAuth: the BMC answers but refused the session: a wrong username
	// or password (or, for IPMI, no cipher suite in common). Not retried.
	ErrAuth = errors.New("bmc: authentication refused")
	// ErrUnreachable: nothing answers at the address.
	ErrUnreachable = errors.New("bmc: unreachable")
	// ErrTimeout: the BMC answers pings but did not finish the operation
	// within Config.Timeout.
	ErrTimeout = errors.New("bmc: timed out")
	// ErrBootDeviceRefused: the BMC refused to set the next boot device.
	// Callers treat it as a warning: not every BMC supports it (ipmi_sim
	// does not). Not retried.
	ErrBootDeviceRefused = errors.New("bmc: boot device refused")
	// ErrCertificate: the BMC's Redfish service presented a certificate
	// that is not trusted (not the one accepted for it, and not vouched
	// for by the site's BMC CA). Nothing was sent over the connection:
	// the password did not reach it. Error.Certificate is the
	// certificate's fingerprint. Not retried, and no other driver is
	// tried: an operator must accept the certificate (or fix the BMC).
	ErrCertificate = errors.New("bmc: certificate not trusted")
)

// kinds are the sentinels, the most telling first: when drivers fail in
// different ways, the operation's error is of the first kind any of them
// had.
var kinds = []error{ErrCertificate, ErrBootDeviceRefused, ErrAuth, ErrTimeout, ErrUnreachable}

// kindOf returns the sentinel err wraps, or nil.
func kindOf(err error) error {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// retryable reports whether an attempt that failed with kind may be
// tried again.
func retryable(kind error) bool {
	return kind != ErrAuth && kind != ErrBootDeviceRefused && kind != ErrCertificate
}

// Error is a failed operation on one BMC. Its text never holds the
// password.
type Error struct {
	// Address is the BMC's address as the credentials gave it.
	Address string
	// Op is the operation: "power on", "power off", "power cycle",
	// "power status" or "set boot device".
	Op string
	// Kind is what failed: ErrAuth, ErrUnreachable, ErrTimeout,
	// ErrBootDeviceRefused, ErrCertificate, the caller's
	// context.Canceled or context.DeadlineExceeded, or nil when not
	// known.
	Kind error
	// Certificate is the fingerprint (see Fingerprint) of the
	// certificate the BMC presented, when Kind is ErrCertificate.
	Certificate string
	// Attempts is how many attempts were made.
	Attempts int
	// Detail is what each driver said at the last attempt, password
	// removed.
	Detail string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bmc %s: %s: ", e.Address, e.Op)
	switch {
	case e.Kind == nil:
		b.WriteString("failed")
	case errors.Is(e.Kind, context.Canceled) || errors.Is(e.Kind, context.DeadlineExceeded):
		b.WriteString(e.Kind.Error())
	default:
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "bmc: "))
	}
	switch {
	case e.Attempts == 1:
		b.WriteString(" (1 attempt)")
	case e.Attempts > 1:
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// kindError is a driver's failure: its text says what happened, without
// the kind's own text, and it wraps its kind.
type kindError struct {
	kind error
	msg  string
	cert string // the refused certificate's fingerprint (ErrCertificate)
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// failure returns an error of kind (nil for none) with the message.
func failure(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// scrub removes secret from s.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, redacted)
}

// oneLine collapses runs of white space, newlines included, to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
