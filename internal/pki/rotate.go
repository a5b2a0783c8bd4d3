package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// NextKeyFile holds a key pair staged to replace the node's own
// (StageKey) until the rotation is committed (CommitKey), mode 0600.
const NextKeyFile = "node.next.key"

// A node rotates its key in steps that survive a crash between any two:
// it stages a new key pair (StageKey) and has its member record name the
// new key's fingerprint beside the old one, with the old key; once that is
// committed, it makes the new key its own (CommitKey), and has its record
// pin the new key alone, with the new key. A node that finds a staged key
// at start commits it if its record names it, and drops it otherwise.

// StageKey makes a new key pair for the node, kept beside its own until
// CommitKey, and returns its fingerprint; a key staged before is returned
// again.
func (i *Identity) StageKey() (string, error) {
	key, err := loadOrCreateKey(filepath.Join(i.dir, NextKeyFile))
	if err != nil {
		return "", err
	}
	return KeyFingerprint(key.Public())
}

// Staged returns the fingerprint of the staged key, if there is one.
func (i *Identity) Staged() (string, bool, error) {
	key, err := loadKey(filepath.Join(i.dir, NextKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	fp, err := KeyFingerprint(key.Public())
	return fp, err == nil, err
}

// DropStaged forgets the staged key, if any.
func (i *Identity) DropStaged() error {
	if err := os.Remove(filepath.Join(i.dir, NextKeyFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// CommitKey makes the staged key the node's own: its file replaces
// KeyFile, and the node's certificate is issued anew for it by the issuer
// (SetIssuer); without one the node has no certificate until
// SetCertificate.
func (i *Identity) CommitKey() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	next := filepath.Join(i.dir, NextKeyFile)
	key, err := loadKey(next)
	if err != nil {
		return err
	}
	kp, err := newKeyPair(key)
	if err != nil {
		return err
	}
	if err := os.Rename(next, filepath.Join(i.dir, KeyFile)); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	i.kp.Store(kp)
	i.cert.Store(nil)
	if is := i.issuer.Load(); is != nil {
		if _, err := i.renewLocked(is.ca, is.hosts, time.Now()); err != nil {
			return err
		}
	}
	return nil
}
