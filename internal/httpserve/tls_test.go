package httpserve

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// TLS.For: loopback is plain, any other address HTTPS from the cluster
// unless insecure (warned), and the operator's certificate wins.
func TestTLSFor(t *testing.T) {
	cluster := &tls.Config{ServerName: "cluster"}
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7080}
	network := &net.TCPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 7080}
	wildcard := &net.TCPAddr{IP: net.IPv4zero, Port: 7080}
	for name, tc := range map[string]struct {
		addr     net.Addr
		insecure bool
		want     *tls.Config
		warn     bool
	}{
		"loopback":          {addr: loopback},
		"network":           {addr: network, want: cluster},
		"wildcard":          {addr: wildcard, want: cluster},
		"network, insecure": {addr: network, insecure: true, warn: true},
	} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			got, err := TLS{Insecure: tc.insecure, InsecureFlag: "insecure_http",
				Cluster: func() (*tls.Config, error) { return cluster, nil }}.For(tc.addr, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("For(%s) = %v, want %v", tc.addr, got, tc.want)
			}
			if warned := strings.Contains(logs.String(), "level=WARN"); warned != tc.warn {
				t.Errorf("warned %v, want %v:\n%s", warned, tc.warn, logs.String())
			}
		})
	}
	_, err := TLS{CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"}.For(loopback, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Errorf("a missing operator certificate: %v", err)
	}
}
