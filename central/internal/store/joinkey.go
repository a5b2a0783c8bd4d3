package store

import (
	"errors"
	"fmt"
	"os"

	"github.com/outposthq/outpost/internal/seal"
)

// Every node of a replicated central seals BMC passwords with the same
// key: a node joining the cluster gets it from a member, sealed with a
// key derived from the admin token the joiner presents, so the key never
// crosses the wire (or lands in a proxy's log) in the clear.

// joinPurpose labels the key derived from a join token. It derives the
// same key as release b482c18 did (SHA-256 of the label, a zero byte and
// the token), so a key sealed by a node of that release opens too
// (openCompat).
const joinPurpose = "outpost central join v1"

func joinAD(joiner string) string { return "central key for " + joiner }

// SealKeyFor returns the store's key sealed for the node joiner, which
// presented token.
func (d *DB) SealKeyFor(token, joiner string) []byte {
	return seal.KeyFromPassphrase(token, joinPurpose).Seal(d.key.Raw(), joinAD(joiner))
}

// DeriveKey returns a secret derived from central's key for purpose (see
// seal.Key.Derive): the cluster derives its CA from one (internal/pki).
func (d *DB) DeriveKey(purpose string) []byte { return d.key.Derive(purpose) }

// SaveJoinKey opens a key sealed by SealKeyFor for joiner with token and
// saves it as the key of the store at path, which must not exist yet.
func SaveJoinKey(path string, sealed []byte, token, joiner string) error {
	raw, err := openCompat(seal.KeyFromPassphrase(token, joinPurpose), sealed, joinAD(joiner))
	if err != nil {
		return errors.New("store: the sealed key does not open with this join token")
	}
	if len(raw) != seal.KeySize && len(raw) != legacyKeySize {
		return fmt.Errorf("store: the key has %d bytes, want %d", len(raw), seal.KeySize)
	}
	f, err := os.OpenFile(KeyFile(path), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store: save key: %w", err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return fmt.Errorf("store: save key: %w", err)
	}
	return f.Close()
}
