package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("hunter2-bmc")
	s := k.Seal(secret, "machine/m1/bmc")
	if bytes.Contains(s, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k.Open(s, "machine/m1/bmc")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k.Open(s, "machine/m2/bmc"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with other ad: %v, want ErrOpen", err)
	}
	other, _ := Generate()
	if _, err := other.Open(s, "machine/m1/bmc"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with other key: %v, want ErrOpen", err)
	}
	s[len(s)-1] ^= 1
	if _, err := k.Open(s, "machine/m1/bmc"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open of damaged value: %v, want ErrOpen", err)
	}
	if _, err := k.Open([]byte{1, 2}, ""); !errors.Is(err, ErrOpen) {
		t.Errorf("Open of short value: %v, want ErrOpen", err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.key")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}
	if !bytes.Equal(k1.Raw(), k2.Raw()) {
		t.Fatal("reloaded key differs")
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); err == nil {
		t.Fatal("a truncated key file loaded without error")
	}
}

func TestSealStable(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	a := k.SealStable([]byte("secret"), "machine/m1/bmc")
	if b := k.SealStable([]byte("secret"), "machine/m1/bmc"); !bytes.Equal(a, b) {
		t.Error("the same secret sealed twice differs")
	}
	if b := k.SealStable([]byte("other"), "machine/m1/bmc"); bytes.Equal(a, b) {
		t.Error("two secrets sealed alike")
	}
	if b := k.SealStable([]byte("secret"), "machine/m2/bmc"); bytes.Equal(a[1:13], b[1:13]) {
		t.Error("the nonce does not depend on the additional data")
	}
	if pt, err := k.Open(a, "machine/m1/bmc"); err != nil || string(pt) != "secret" {
		t.Errorf("open: %q, %v", pt, err)
	}
	if _, err := k.Open(a, "machine/m2/bmc"); err == nil {
		t.Error("opened under another machine's additional data")
	}
}
