package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Digest is an artifact's SHA-256 in lowercase hexadecimal (64 digits).
type Digest string

// Prefix is how a digest is written where other references may appear
// too: "sha256:<hex>".
const Prefix = "sha256:"

// ErrBadDigest refuses a string that is not a SHA-256.
var ErrBadDigest = errors.New("artifact: not a sha256 digest (64 hexadecimal digits)")

// ParseDigest reads "<hex>" or "sha256:<hex>", in either case.
func ParseDigest(s string) (Digest, error) {
	h, _ := cutPrefixFold(s, Prefix)
	if len(h) != 2*sha256.Size {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, clip(s))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadDigest, clip(s))
	}
	return Digest(strings.ToLower(h)), nil
}

// cutPrefixFold is strings.CutPrefix ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// IsRef reports whether s is written as a digest reference
// ("sha256:<hex>"), as an image's kernel or initrd may be.
func IsRef(s string) bool {
	_, err := ParseDigest(s)
	_, ref := cutPrefixFold(s, Prefix)
	return err == nil && ref
}

// Ref is d as a reference: "sha256:<hex>".
func (d Digest) Ref() string { return Prefix + string(d) }

// Short is the first twelve digits, for messages.
func (d Digest) Short() string {
	if len(d) < 12 {
		return string(d)
	}
	return string(d[:12])
}

// valid reports whether d is written as a Digest is: 64 lowercase
// hexadecimal digits, without the prefix.
func (d Digest) valid() bool {
	p, err := ParseDigest(string(d))
	return err == nil && p == d
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
