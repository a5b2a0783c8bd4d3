package store

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/outposthq/outpost/internal/seal"
)

// SealedPasswordField holds a machine's BMC password in the store, sealed; the
// clear "password" is only on the wire, to the site (which seals it with
// its own site key) and from the operator.
const SealedPasswordField = "central_sealed_password"

// BMC passwords are sealed with central's key (internal/seal) by
// SealStable: putting the same machine again stores the same bytes and
// makes no new revision; it reveals only that a machine's password did
// not change.

// legacyKeySize is the size of a key file of release b482c18: the
// AES-256 key, then an HMAC key that derived its nonces (no longer
// needed: SealStable derives its own from the AES key).
const legacyKeySize = 64

// loadKey reads central's key at path, creating it (0600) if the store
// is new. A key file of release b482c18 holds 64 bytes: its first 32 are
// the key, the same AES-256 key that sealed its passwords.
func loadKey(path string) (*seal.Key, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, _, err := seal.LoadOrCreate(path)
		return k, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: key: %w", err)
	}
	if len(raw) == legacyKeySize {
		raw = raw[:seal.KeySize]
	}
	k, err := seal.NewKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: %v", ErrCorrupt, path, err)
	}
	return k, nil
}

// sealAD binds a sealed password to its site and machine.
func sealAD(site, key string) string { return "machine " + site + "/" + key + " bmc password" }

// sealMachine replaces a machine object's clear BMC password with its
// sealed form. Objects without one are returned as they are.
func sealMachine(k *seal.Key, site, key string, obj json.RawMessage) (json.RawMessage, error) {
	m, bmc, ok := machineBMC(obj)
	if !ok {
		return obj, nil
	}
	var pw string
	if json.Unmarshal(bmc["password"], &pw) != nil || pw == "" {
		return obj, nil
	}
	sealed := k.SealStable([]byte(pw), sealAD(site, key))
	delete(bmc, "password")
	bmc[SealedPasswordField], _ = json.Marshal(base64.StdEncoding.EncodeToString(sealed))
	return remarshal(m, bmc)
}

// openMachine puts a sealed BMC password back in the clear, for the site.
func openMachine(k *seal.Key, site, key string, obj json.RawMessage) (json.RawMessage, error) {
	m, bmc, ok := machineBMC(obj)
	if !ok {
		return obj, nil
	}
	var enc string
	if json.Unmarshal(bmc[SealedPasswordField], &enc) != nil || enc == "" {
		return obj, nil
	}
	sealed, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: machine %s/%s: a sealed BMC password that does not decode", ErrCorrupt, site, key)
	}
	pw, err := openCompat(k, sealed, sealAD(site, key))
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
