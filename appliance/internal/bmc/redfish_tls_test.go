package bmc

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// redfishCreds are the credentials of bmc, accepting the certificate
// whose fingerprint is fp ("" accepts none).
func redfishCreds(bmc *lab.RedfishBMC, fp string) Credentials {
	return Credentials{Address: bmc.Addr, Username: bmc.Username, Password: bmc.Password, Driver: Redfish, Fingerprint: fp}
}

func redfishPool(t *testing.T, logs *bytes.Buffer, cfg Config) *Pool {
	cfg.Timeout, cfg.Backoff, cfg.Log = 10*time.Second, 10*time.Millisecond, testLog(t, logs)
	return New(cfg)
}

// fingerprintOf is the fingerprint of what bmc presents now.
func fingerprintOf(bmc *lab.RedfishBMC) string { return Fingerprint(bmc.Certificate().Certificate[0]) }

// refusedCertificate checks that err refuses the certificate fp after one
// attempt, says so naming it, and that bmc never got the password.
func refusedCertificate(t *testing.T, err error, bmc *lab.RedfishBMC, fp string, logs string) {
	t.Helper()
	t.Logf("refused: %v", err)
	if seen := bmc.PasswordSeen(); len(seen) > 0 {
		t.Errorf("the BMC received the password: %+v", seen)
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrCertificate) {
		t.Fatalf("err %v, want an *Error of ErrCertificate", err)
	}
	if e.Certificate != fp || e.Attempts != 1 {
		t.Errorf("Certificate %q after %d attempts, want %q after 1", e.Certificate, e.Attempts, fp)
	}
	if !strings.Contains(err.Error(), fp) || !strings.Contains(err.Error(), "the password was not sent") {
		t.Errorf("error %q: want the fingerprint it refused, and that the password was not sent", err)
	}
	noPassword(t, bmc.Password, err.Error(), logs)
}

// TestRedfishUnknownCertificateRefused: a BMC presenting a self-signed
// certificate nobody accepted gets the TLS handshake and nothing else:
// no request, no session, no password; the error names the certificate.
func TestRedfishUnknownCertificateRefused(t *testing.T) {
	bmc := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{})
	var logs bytes.Buffer
	p := redfishPool(t, &logs, Config{})
	err := p.PowerOn(t.Context(), redfishCreds(bmc, ""))
	refusedCertificate(t, err, bmc, fingerprintOf(bmc), logs.String())
	if bmc.Handshakes() == 0 {
		t.Fatal("the client never reached the BMC: the test proves nothing")
	}
	if reqs := bmc.Requests(); len(reqs) > 0 {
		t.Errorf("requests reached a BMC whose certificate was refused: %+v", reqs)
	}
	if bmc.Power() != "Off" {
		t.Errorf("power %s, want Off: nothing may have been done", bmc.Power())
	}
}

// TestRedfishAcceptedCertificate: with its certificate accepted, the same
// BMC is driven through every operation, and it is the BMC (not the test)
// that saw the password, in the session request.
func TestRedfishAcceptedCertificate(t *testing.T) {
	bmc := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{})
	var logs bytes.Buffer
	p := redfishPool(t, &logs, Config{})
	c := redfishCreds(bmc, fingerprintOf(bmc))
	ctx := t.Context()
	if err := p.PowerOn(ctx, c); err != nil {
		t.Fatal(err)
	}
	if st, err := p.PowerState(ctx, c); err != nil || st != On || bmc.Power() != "On" {
		t.Fatalf("after power on: %q %v, BMC says %s", st, err, bmc.Power())
	}
	if err := p.SetBootPXE(ctx, c, BootOptions{EFI: true}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once", "BootSourceOverrideMode": "UEFI"}
	if diff := cmp.Diff(want, bmc.BootOverride()); diff != "" {
		t.Errorf("boot override (-want +got):\n%s", diff)
	}
	if err := p.PowerCycle(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := p.PowerOff(ctx, c); err != nil || bmc.Power() != "Off" {
		t.Fatalf("power off: %v, BMC says %s", err, bmc.Power())
	}
	if len(bmc.PasswordSeen()) == 0 {
		t.Error("the BMC never saw the password: PasswordSeen cannot tell a refusal from a leak")
	}
	noPassword(t, c.Password, logs.String())
}

// TestRedfishChangedCertificateRefused: once the BMC presents another
// certificate than the one accepted, it is refused again, naming both.
func TestRedfishChangedCertificateRefused(t *testing.T) {
	bmc := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{})
	var logs bytes.Buffer
	p := redfishPool(t, &logs, Config{})
	accepted := fingerprintOf(bmc)
	c := redfishCreds(bmc, accepted)
	if _, err := p.PowerState(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	// An impostor at the BMC's address, or a renewed certificate.
	bmc.SetCertificate(lab.SelfSigned(t, "127.0.0.1"))
	before := len(bmc.Requests())
	err := p.PowerOn(t.Context(), c)
	if got := bmc.Requests()[before:]; len(got) > 0 {
		t.Errorf("requests reached the changed certificate: %+v", got)
	}
	if err == nil {
		t.Fatal("the changed certificate was trusted")
	}
	if !strings.Contains(err.Error(), accepted) || !strings.Contains(err.Error(), "changed") {
		t.Errorf("error %q: want the accepted certificate named and the change said", err)
	}
	e := &Error{}
	errors.As(err, &e)
	if !errors.Is(err, ErrCertificate) || e.Certificate != fingerprintOf(bmc) || e.Certificate == accepted {
		t.Fatalf("err %v (certificate %q), want ErrCertificate naming the new certificate %s", err, e.Certificate, fingerprintOf(bmc))
	}
	if bmc.Power() != "Off" {
		t.Error("the power changed through a refused certificate")
	}
	noPassword(t, c.Password, err.Error(), logs.String())
}

// TestRedfishSiteCA: a certificate the site's BMC CA issued for the BMC's
// address is trusted without being accepted; one it issued for another
// name, or a self-signed one, is not.
func TestRedfishSiteCA(t *testing.T) {
	ca := lab.NewCA(t, "site BMC CA")
	good := ca.Issue("127.0.0.1")
	bmc := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{Certificate: &good})
	var logs bytes.Buffer
	p := redfishPool(t, &logs, Config{RootCAs: ca.Pool()})
	if err := p.PowerOn(t.Context(), redfishCreds(bmc, "")); err != nil {
		t.Fatalf("a certificate of the site's CA: %v", err)
	}
	for name, cert := range map[string]tls.Certificate{
		"issued for another name": ca.Issue("bmc.example.net"),
		"self-signed":             lab.SelfSigned(t, "127.0.0.1"),
	} {
		other := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{Certificate: &cert})
		err := p.PowerOn(t.Context(), redfishCreds(other, ""))
		t.Run(name, func(t *testing.T) {
			refusedCertificate(t, err, other, fingerprintOf(other), logs.String())
			if !strings.Contains(err.Error(), "the site's BMC CA does not vouch for it as 127.0.0.1") {
				t.Errorf("error %q: want the CA named", err)
			}
		})
	}
}

// TestPoolNoFallbackAfterCertificate: with no driver pinned, a Redfish
// certificate refused ends the operation: IPMI is not tried with the
// password.
func TestPoolNoFallbackAfterCertificate(t *testing.T) {
	b := &fakeBMC{fail: func(driver string) error {
		if driver == Redfish {
			return &kindError{kind: ErrCertificate, cert: "sha256:" + strings.Repeat("ab", 32), msg: "not trusted"}
		}
		return nil
	}}
	p := New(Config{Drivers: fakeDrivers(map[string]*fakeBMC{"10.0.0.1:623": b}, Redfish, IPMI), Backoff: time.Millisecond})
	err := p.PowerOn(t.Context(), creds("10.0.0.1", ""))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrCertificate) || e.Certificate != "sha256:"+strings.Repeat("ab", 32) {
		t.Fatalf("err %v, want ErrCertificate with its fingerprint", err)
	}
	if diff := cmp.Diff([]string{"redfish on"}, b.callList()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}
