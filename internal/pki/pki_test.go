package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func mustCA(t *testing.T, s []byte, cluster string, gen uint64) *CA {
	t.Helper()
	ca, err := DeriveCA(s, cluster, gen)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// leaf issues a certificate for a new key and returns it parsed.
func leaf(t *testing.T, ca *CA, id string, now time.Time) (*x509.Certificate, ed25519.PrivateKey) {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := ca.Issue(id, pub, []string{"127.0.0.1:7081", "http://node1.example:7080/", ""}, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func TestDeriveCADeterministic(t *testing.T) {
	a, b := mustCA(t, secret(1), "site", 1), mustCA(t, secret(1), "site", 1)
	if !bytes.Equal(a.Certificate().Raw, b.Certificate().Raw) || a.Fingerprint() != b.Fingerprint() {
		t.Fatal("the same secret, cluster and generation gave two CA certificates")
	}
	for name, other := range map[string]*CA{
		"another secret":     mustCA(t, secret(2), "site", 1),
		"another cluster":    mustCA(t, secret(1), "central", 1),
		"another generation": mustCA(t, secret(1), "site", 2),
	} {
		if other.Fingerprint() == a.Fingerprint() || other.Certificate().PublicKey.(ed25519.PublicKey).Equal(a.Certificate().PublicKey) {
			t.Errorf("%s gave the same CA", name)
		}
	}
	if !a.Certificate().IsCA || a.Certificate().MaxPathLen != 0 || !a.Certificate().MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v, MaxPathLen %d", a.Certificate().IsCA, a.Certificate().MaxPathLen)
	}
	if _, err := DeriveCA(make([]byte, 16), "site", 1); err == nil {
		t.Error("a 16-byte secret was accepted")
	}
	if _, err := DeriveCA(secret(1), "si/te", 1); err == nil {
		t.Error("a cluster name with a slash was accepted")
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, secret(1), "site", 1)
	trust := NewTrust("site", ca.Certificate())
	good, key := leaf(t, ca, "node1", now)
	wantFP, _ := KeyFingerprint(key.Public())

	p, err := trust.Verify([]*x509.Certificate{good}, x509.ExtKeyUsageClientAuth, now)
	if err != nil || p.ID != "node1" || p.Fingerprint != wantFP {
		t.Fatalf("Verify = %+v, %v; want node1 with fingerprint %s", p, err, wantFP)
	}
	if _, err := trust.Verify([]*x509.Certificate{good}, x509.ExtKeyUsageServerAuth, now); err != nil {
		t.Errorf("as a server certificate: %v", err)
	}
	if got := fmt.Sprint(good.IPAddresses, good.DNSNames); got != "[127.0.0.1] [node1.example]" {
		t.Errorf("SANs %s, want the hosts without ports", got)
	}

	otherCA := mustCA(t, secret(2), "site", 1)
	stranger, _ := leaf(t, otherCA, "node1", now)
	central, _ := leaf(t, mustCA(t, secret(1), "central", 1), "node1", now)
	selfSigned := otherCA.Certificate()
	tests := map[string]struct {
		chain []*x509.Certificate
		at    time.Time
		want  error
	}{
		"no certificate":         {nil, now, ErrNoCertificate},
		"another CA":             {[]*x509.Certificate{stranger}, now, ErrUnknownCA},
		"a CA certificate":       {[]*x509.Certificate{selfSigned}, now, ErrUnknownCA},
		"another cluster's CA":   {[]*x509.Certificate{central}, now, ErrUnknownCA},
		"expired":                {[]*x509.Certificate{good}, now.Add(NodeValidity + time.Hour), ErrExpired},
		"not yet valid":          {[]*x509.Certificate{good}, now.Add(-2 * time.Hour), ErrExpired},
		"the CA as intermediate": {[]*x509.Certificate{stranger, ca.Certificate()}, now, ErrUnknownCA},
	}
	for name, tc := range tests {
		if _, err := trust.Verify(tc.chain, x509.ExtKeyUsageClientAuth, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}

	// Another cluster name under the same CA key: names no node of ours.
	if _, err := NewTrust("central", ca.Certificate()).Verify([]*x509.Certificate{good}, x509.ExtKeyUsageClientAuth, now); !errors.Is(err, ErrNotNode) {
		t.Errorf("a site certificate verified as central's: %v, want ErrNotNode", err)
	}
}

// Both generations verify during a rotation; after it, only the new.
func TestTrustRotation(t *testing.T) {
	now := time.Now()
	g1, g2 := mustCA(t, secret(1), "site", 1), mustCA(t, secret(1), "site", 2)
	old, _ := leaf(t, g1, "n1", now)
	renewed, _ := leaf(t, g2, "n1", now)
	trust := NewTrust("site", g1.Certificate(), g2.Certificate())
	for _, c := range []*x509.Certificate{old, renewed} {
		if _, err := trust.Verify([]*x509.Certificate{c}, x509.ExtKeyUsageClientAuth, now); err != nil {
			t.Errorf("during the rotation: %v", err)
		}
	}
	trust.Replace(g2.Certificate())
	if _, err := trust.Verify([]*x509.Certificate{old}, x509.ExtKeyUsageClientAuth, now); !errors.Is(err, ErrUnknownCA) {
		t.Errorf("generation 1 after the rotation: %v, want ErrUnknownCA", err)
	}
	if _, err := NewTrust("site").Verify([]*x509.Certificate{renewed}, x509.ExtKeyUsageClientAuth, now); !errors.Is(err, ErrUnknownCA) {
		t.Errorf("an empty trust: %v, want ErrUnknownCA", err)
	}
}

func TestIdentityFiles(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadIdentity(dir, "node1")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	if id.Certificate() != nil {
		t.Error("a new identity has a certificate")
	}
	ca := mustCA(t, secret(1), "site", 1)
	now := time.Now()
	if issued, err := id.Renew(ca, []string{"127.0.0.1"}, now); !issued || err != nil {
		t.Fatalf("Renew of a new identity: %v, %v", issued, err)
	}
	if issued, _ := id.Renew(ca, []string{"127.0.0.1"}, now.Add(time.Hour)); issued {
		t.Error("a fresh certificate was renewed")
	}
	for name, at := range map[string]struct {
		ca    *CA
		hosts []string
		now   time.Time
	}{
		"near expiry": {ca, nil, now.Add(NodeValidity * 3 / 4)},
		"another CA":  {mustCA(t, secret(1), "site", 2), nil, now},
		"a new host":  {ca, []string{"127.0.0.1", "10.0.0.1"}, now},
	} {
		if issued, err := id.Renew(at.ca, at.hosts, at.now); !issued || err != nil {
			t.Errorf("Renew with %s: %v, %v; want a new certificate", name, issued, err)
		}
	}

	again, err := LoadIdentity(dir, "node1")
	if err != nil || again.Fingerprint() != id.Fingerprint() || again.Certificate() == nil ||
		!bytes.Equal(again.Certificate().Raw, id.Certificate().Raw) {
		t.Fatalf("reloaded identity: %v, %v", again, err)
	}
	// A certificate for another key is refused, and a saved one for
	// another node is not loaded.
	other, _ := leaf(t, ca, "node1", now)
	if err := id.SetCertificate(other.Raw); err == nil {
		t.Error("a certificate for another key was accepted")
	}
	if renamed, err := LoadIdentity(dir, "node2"); err != nil || renamed.Certificate() != nil {
		t.Errorf("node1's certificate loaded as node2's: %v", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := LoadIdentity(dir, "node1"); err == nil {
		t.Error("a key file readable by others was accepted")
	}
}

// handshake connects a client to a server over loopback and returns each
// side's verdict: the server's handshake error, and the client's error
// from its handshake or from reading the server's greeting (in TLS 1.3 a
// client learns that the server refused its certificate on its first
// read).
func handshake(t *testing.T, server, client *tls.Config) (serr, cerr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		s := tls.Server(c, server)
		if err = s.Handshake(); err == nil {
			_, err = s.Write([]byte("ok"))
		}
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		_, err = c.Read(make([]byte, 2))
		c.Close()
	}
	return <-done, err
}

func identity(t *testing.T, ca *CA, id string) *Identity {
	t.Helper()
	i, err := LoadIdentity(t.TempDir(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ca != nil {
		if _, err := i.Renew(ca, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return i
}

// Mutual TLS: members connect; a stranger's certificate, no certificate,
// or a member's id with another key is refused, in both directions.
func TestMutualTLS(t *testing.T) {
	ca := mustCA(t, secret(1), "site", 1)
	trust := NewTrust("site", ca.Certificate())
	n1, n2 := identity(t, ca, "n1"), identity(t, ca, "n2")
	members := map[string]string{"n1": n1.Fingerprint(), "n2": n2.Fingerprint()}
	verify := func(p Peer) error {
		fp, ok := members[p.ID]
		switch {
		case !ok:
			return errors.New("not a member")
		case fp != p.Fingerprint:
			return errors.New("fingerprint mismatch")
		}
		return nil
	}
	server := ServerConfig(n1, trust, verify, "outpost-test")
	if serr, cerr := handshake(t, server, ClientConfig(n2, trust, verify, "outpost-test")); serr != nil || cerr != nil {
		t.Fatalf("members: server %v, client %v", serr, cerr)
	}

	impostor := identity(t, ca, "n2") // a CA-signed n2 with another key
	stranger := identity(t, mustCA(t, secret(9), "site", 1), "n2")
	noCert := identity(t, nil, "n2")
	for name, id := range map[string]*Identity{"another key": impostor, "another CA": stranger, "no certificate": noCert} {
		strangerTrust := NewTrust("site", ca.Certificate(), stranger.Certificate())
		serr, _ := handshake(t, server, ClientConfig(id, strangerTrust, nil, "outpost-test"))
		if serr == nil {
			t.Errorf("%s as a client: accepted", name)
		}
		if _, cerr := handshake(t, ServerConfig(id, strangerTrust, nil, "outpost-test"), ClientConfig(n2, trust, verify, "outpost-test")); cerr == nil {
			t.Errorf("%s as a server: accepted", name)
		}
	}
}

// A key rotation: the staged key survives a reload, and once committed
// it is the node's, with a certificate issued for it.
func TestRotateKey(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, secret(1), "site", 1)
	id, err := LoadIdentity(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := id.SetIssuer(ca, nil); err != nil {
		t.Fatal(err)
	}
	old := id.Fingerprint()
	if _, ok, err := id.Staged(); ok || err != nil {
		t.Fatalf("a new identity has a staged key: %v", err)
	}
	next, err := id.StageKey()
	if err != nil || next == old {
		t.Fatalf("StageKey = %s, %v (old %s)", next, err, old)
	}
	if again, _ := id.StageKey(); again != next {
		t.Error("staging twice made two keys")
	}
	reloaded, err := LoadIdentity(dir, "n1")
	if err != nil || reloaded.Fingerprint() != old {
		t.Fatalf("reloaded before the commit: %v, %v", reloaded, err)
	}
	if fp, ok, _ := reloaded.Staged(); !ok || fp != next {
		t.Errorf("the staged key after a reload: %s %v, want %s", fp, ok, next)
	}
	if err := id.CommitKey(); err != nil {
		t.Fatal(err)
	}
	if id.Fingerprint() != next {
		t.Errorf("fingerprint %s after the commit, want %s", id.Fingerprint(), next)
	}
	if fp, _ := KeyFingerprint(id.Certificate().PublicKey); fp != next {
		t.Error("the certificate after the commit is not for the new key")
	}
	if reloaded, err := LoadIdentity(dir, "n1"); err != nil || reloaded.Fingerprint() != next || reloaded.Certificate() == nil {
		t.Errorf("reloaded after the commit: %v, %v", reloaded, err)
	}
	if _, ok, _ := id.Staged(); ok {
		t.Error("a staged key is left after the commit")
	}
	id.StageKey()
	if err := id.DropStaged(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := id.Staged(); ok || id.Fingerprint() != next {
		t.Error("DropStaged did not drop the staged key, or changed the node's")
	}
}
