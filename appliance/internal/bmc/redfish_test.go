package bmc

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// These tests drive bmclib's gofish provider against the lab's Redfish BMC
// (lab.RedfishBMC: a Redfish service over HTTPS that records every
// request with the credentials it carried), and against bare HTTPS
// servers for the failures.

// TestRedfishAuthRefused: an HTTPS server (its certificate accepted) that
// answers 401 to everything is an authentication error, not retried,
// without the password.
func TestRedfishAuthRefused(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"code":"Base.1.0.NoValidSession","message":"There is no valid session established with the implementation."}}`))
	}))
	defer srv.Close()
	var logs bytes.Buffer
	p := New(Config{Timeout: 10 * time.Second, Backoff: 10 * time.Millisecond, Log: testLog(t, &logs)})
	c := Credentials{Address: srv.Listener.Addr().String(), Username: "admin", Password: "redfish-secret-1", Driver: Redfish,
		Fingerprint: Fingerprint(srv.Certificate().Raw)}
	_, err := p.PowerState(t.Context(), c)
	t.Logf("401: %v", err)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err %v, want ErrAuth", err)
	}
	var e *Error
	if errors.As(err, &e) && e.Attempts != 1 {
		t.Errorf("%d attempts, want 1", e.Attempts)
	}
	noPassword(t, c.Password, err.Error(), logs.String())
}

// TestRedfishUnreachable: nothing listens: unreachable, after the retries.
func TestRedfishUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	p := New(Config{Timeout: 5 * time.Second, Backoff: 10 * time.Millisecond, Log: testLog(t, &logs)})
	c := Credentials{Address: addr, Username: "admin", Password: "redfish-secret-2", Driver: Redfish}
	err = p.PowerOn(t.Context(), c)
	t.Logf("closed port: %v", err)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "bmc "+addr+": power on: unreachable (3 attempts)") {
		t.Errorf("error %q: want the address, the operation and what failed", err)
	}
	noPassword(t, c.Password, err.Error(), logs.String())
}
