// Package seal encrypts secrets (BMC passwords, keys handed to a joining
// node) so that they are never at rest, in a Raft log or in a snapshot in
// the clear. Both sides use it: a site seals with its site key, central
// with its own.
//
// A key is 32 random bytes in a file of the data directory, mode 0600,
// the same on every node of a cluster (a joining node receives it sealed
// with a key derived from the operator's token). Sealed values are
// AES-256-GCM: a version byte, a 12-byte nonce, then the ciphertext. Seal
// draws the nonce at random; SealStable derives it from the value (a
// synthetic IV), for stores that must store the same bytes for the same
// secret. Open opens both.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
)

// KeySize is the length of a site key.
const KeySize = 32

const version1 = 1

// ErrOpen means a sealed value could not be opened: wrong key or damage.
var ErrOpen = errors.New("seal: cannot open sealed value (wrong site key or damaged data)")

// Key is a site key.
type Key struct {
	aead cipher.AEAD
	raw  []byte
}

// NewKey wraps 32 raw key bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("seal: site key is %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Key{aead: aead, raw: append([]byte(nil), raw...)}, nil
}

// Generate returns a new random site key.
func Generate() (*Key, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return NewKey(raw)
}

// LoadOrCreate reads the key at path, creating it (0600) if absent.
func LoadOrCreate(path string) (key *Key, created bool, err error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		k, err := NewKey(raw)
		if err != nil {
			return nil, false, fmt.Errorf("seal: %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("seal: %w", err)
	}
	k, err := Generate()
	if err != nil {
		return nil, false, err
	}
	return k, true, k.Save(path)
}

// Load reads the key at path.
func Load(path string) (*Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return NewKey(raw)
}

// Save writes the key to path with mode 0600, atomically.
func (k *Key) Save(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, k.raw, 0o600); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return nil
}

// Raw returns the key bytes, for sealing it to a joining node.
func (k *Key) Raw() []byte { return append([]byte(nil), k.raw...) }

// Seal encrypts plaintext. ad (additional data) binds the value to its
// place, e.g. "machine/m1/bmc": a sealed value copied elsewhere won't open.
func (k *Key) Seal(plaintext []byte, ad string) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("seal: random nonce: " + err.Error())
	}
	out := append([]byte{version1}, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(ad))
}

// SealStable encrypts plaintext like Seal, but the same plaintext and ad
// always give the same bytes: the nonce is an HMAC of both under a key
// derived from k (a synthetic IV, as in RFC 5297). It reveals only whether
// two sealed values hold the same secret; use it where a store must not
// see a change when nothing changed.
func (k *Key) SealStable(plaintext []byte, ad string) []byte {
	m := hmac.New(sha256.New, k.Derive("seal stable nonce v1"))
	m.Write([]byte(ad))
	m.Write([]byte{0})
	m.Write(plaintext)
	nonce := m.Sum(nil)[:k.aead.NonceSize()]
	out := append([]byte{version1}, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(ad))
}

// Open decrypts a value made by Seal or SealStable with the same ad.
func (k *Key) Open(sealed []byte, ad string) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != version1 {
		return nil, ErrOpen
	}
	pt, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(ad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Derive returns a purpose-bound secret from the key (HMAC-SHA256), such
// as the cluster secret nodes authenticate each other with.
func (k *Key) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, k.raw)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// KeyFromPassphrase derives a one-off key from a high-entropy secret such
// as an API token (SHA-256 with a purpose label). Not for human passwords.
func KeyFromPassphrase(secret, purpose string) *Key {
	sum := sha256.Sum256([]byte(purpose + "\x00" + secret))
	k, _ := NewKey(sum[:])
	return k
}
