package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
)

// Every node of a replicated central seals BMC passwords with the same
// key: a node joining the cluster gets it from a member, sealed with a
// key derived from the admin token the joiner presents, so the key never
// crosses the wire (or lands in a proxy's log) in the clear.

// joinPurpose labels the key derived from a join token.
const joinPurpose = "outpost central join v1\x00"

func joinAEAD(token string) (cipher.AEAD, error) {
	k := sha256.Sum256([]byte(joinPurpose + token))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealKeyFor returns the store's key sealed for the node joiner, which
// presented token.
func (d *DB) SealKeyFor(token, joiner string) ([]byte, error) {
	raw, err := os.ReadFile(KeyFile(d.path))
	if err != nil {
		return nil, fmt.Errorf("store: key: %w", err)
	}
	aead, err := joinAEAD(token)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, raw, []byte("central key for "+joiner)), nil
}

// SaveJoinKey opens a key sealed by SealKeyFor for joiner with token and
// saves it as the key of the store at path, which must not exist yet.
func SaveJoinKey(path string, sealed []byte, token, joiner string) error {
	aead, err := joinAEAD(token)
	if err != nil {
		return err
	}
	n := aead.NonceSize()
	if len(sealed) < n {
		return errors.New("store: the sealed key is too short")
	}
	raw, err := aead.Open(nil, sealed[:n], sealed[n:], []byte("central key for "+joiner))
	if err != nil {
		return errors.New("store: the sealed key does not open with this join token")
	}
	if len(raw) != 64 {
		return fmt.Errorf("store: the key has %d bytes, want 64", len(raw))
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
