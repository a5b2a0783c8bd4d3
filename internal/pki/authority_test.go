package pki

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"
)

// A follower trusts the generations its store names and the next, renews
// the node's certificate under the current one, keeps a certificate of
// the next (issued by a member ahead of the node's store), and drops the
// previous generation at finish.
func TestFollower(t *testing.T) {
	auth, err := NewAuthority(bytes.Repeat([]byte{7}, 32), "site")
	if err != nil {
		t.Fatal(err)
	}
	ident, err := LoadIdentity(t.TempDir(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	trust := NewTrust("site")
	f := NewFollower(auth, trust, ident, []string{"127.0.0.1:7000"})
	gen := func() uint64 {
		g, _ := auth.GenerationOf(ident.Certificate(), Generations{Current: 1, Previous: 0})
		return g
	}
	if renewed, err := f.Follow(Initial); err != nil || renewed || gen() != 1 {
		t.Fatalf("first Follow: renewed %v, %v, generation %d; want a first certificate of 1", renewed, err, gen())
	}
	if renewed, err := f.Follow(Generations{Current: 2, Previous: 1}); err != nil || !renewed || gen() != 2 {
		t.Fatalf("begin: renewed %v, %v, generation %d; want 2", renewed, err, gen())
	}
	if n := len(trust.CAs()); n != 3 {
		t.Errorf("during the rotation the node trusts %d CAs, want 1, 2 and 3", n)
	}
	// A store behind the certificate: the newer certificate is kept.
	if renewed, err := f.Follow(Initial); err != nil || renewed || gen() != 2 {
		t.Fatalf("a store behind: renewed %v, %v, generation %d; want 2 kept", renewed, err, gen())
	}
	if _, err := f.Follow(Generations{Current: 2}); err != nil {
		t.Fatal(err)
	}
	ca1, _ := auth.CA(1)
	old, _ := ca1.Issue("n1", ident.PublicKey(), nil, time.Now())
	if _, err := trust.Verify(parse(t, old), x509.ExtKeyUsageClientAuth, time.Now()); err == nil {
		t.Error("a generation-1 certificate is trusted after finish")
	}
	if ca, g, err := f.Issuer(); err != nil || g != 2 || ca.Generation() != 2 {
		t.Errorf("issuer: %v, %d, %v; want generation 2", ca, g, err)
	}
}

// parse is der as the chain TLS delivers.
func parse(t *testing.T, der []byte) []*x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{c}
}
