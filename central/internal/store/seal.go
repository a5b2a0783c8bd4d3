package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// SealedPasswordField holds a machine's BMC password in the store, sealed; the
// clear "password" is only on the wire, to the site (which seals it with
// its own site key) and from the operator.
const SealedPasswordField = "central_sealed_password"

// sealer seals BMC passwords at rest with the store's key (AES-256-GCM).
// Its nonce is derived from the key, the machine and the password (a
// synthetic IV), so that putting the same machine again stores the same
// bytes and makes no new revision; it reveals only that a machine's
// password did not change.
type sealer struct {
	aead cipher.AEAD
	mac  []byte
}

// loadSealer reads the store's key from path, creating it (0600) if the
// store is new.
func loadSealer(path string) (*sealer, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw = make([]byte, 64)
		rand.Read(raw)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("store: key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("store: key: %w", err)
	}
	if len(raw) != 64 {
		return nil, fmt.Errorf("%w: key %s has %d bytes, want 64", ErrCorrupt, path, len(raw))
	}
	block, err := aes.NewCipher(raw[:32])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, mac: raw[32:]}, nil
}

func sealAD(site, key string) []byte { return []byte("machine " + site + "/" + key + " bmc password") }

// sealMachine replaces a machine object's clear BMC password with its
// sealed form. Objects without one are returned as they are.
func (s *sealer) sealMachine(site, key string, obj json.RawMessage) (json.RawMessage, error) {
	m, bmc, ok := machineBMC(obj)
	if !ok {
		return obj, nil
	}
	var pw string
	if json.Unmarshal(bmc["password"], &pw) != nil || pw == "" {
		return obj, nil
	}
	h := hmac.New(sha256.New, s.mac)
	h.Write(sealAD(site, key))
	h.Write([]byte(pw))
	nonce := h.Sum(nil)[:s.aead.NonceSize()]
	sealed := s.aead.Seal(append([]byte(nil), nonce...), nonce, []byte(pw), sealAD(site, key))
	delete(bmc, "password")
	bmc[SealedPasswordField], _ = json.Marshal(base64.StdEncoding.EncodeToString(sealed))
	return remarshal(m, bmc)
}

// openMachine puts a sealed BMC password back in the clear, for the site.
func (s *sealer) openMachine(site, key string, obj json.RawMessage) (json.RawMessage, error) {
	m, bmc, ok := machineBMC(obj)
	if !ok {
		return obj, nil
	}
	var enc string
	if json.Unmarshal(bmc[SealedPasswordField], &enc) != nil || enc == "" {
		return obj, nil
	}
	sealed, err := base64.StdEncoding.DecodeString(enc)
	n := s.aead.NonceSize()
	if err != nil || len(sealed) < n {
		return nil, fmt.Errorf("%w: machine %s/%s: a sealed BMC password that does not decode", ErrCorrupt, site, key)
	}
	pw, err := s.aead.Open(nil, sealed[:n], sealed[n:], sealAD(site, key))
	if err != nil {
		// Never the bytes: only what failed.
		return nil, fmt.Errorf("%w: machine %s/%s: the BMC password does not open with the store's key", ErrCorrupt, site, key)
	}
	delete(bmc, SealedPasswordField)
	bmc["password"], _ = json.Marshal(string(pw))
	return remarshal(m, bmc)
}

func machineBMC(obj json.RawMessage) (m, bmc map[string]json.RawMessage, ok bool) {
	if json.Unmarshal(obj, &m) != nil || m == nil {
		return nil, nil, false
	}
	if json.Unmarshal(m["bmc"], &bmc) != nil || bmc == nil {
		return nil, nil, false
	}
	return m, bmc, true
}

func remarshal(m, bmc map[string]json.RawMessage) (json.RawMessage, error) {
	var err error
	if m["bmc"], err = json.Marshal(bmc); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}
