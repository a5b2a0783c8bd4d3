package app

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/outposthq/outpost/central/internal/cluster"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/pki"
)

// apiTLS derives central's API CA from its key, publishes it (the PEM
// file, a line on out, a log line) and returns it with the TLS
// configuration the listener ln serves the API and the sync websocket
// with (nil: plain HTTP; see httpserve.TLS).
func apiTLS(cfg *config.Config, db *store.DB, ln net.Listener, log *slog.Logger, out io.Writer) (*pki.APICA, *tls.Config, error) {
	ca, err := cluster.CentralAPICA(db)
	if err != nil {
		return nil, nil, err
	}
	if err := ca.WritePEM(cfg.APICAPath()); err != nil {
		return nil, nil, fmt.Errorf("api CA: %w", err)
	}
	fmt.Fprintf(out, "central API CA %s (PEM in %s): sites pin it with central_ca_fingerprint, the CLI with --ca-fingerprint\n",
		ca.Fingerprint(), cfg.APICAPath())
	log.Info("central API CA", "fingerprint", ca.Fingerprint(), "file", cfg.APICAPath())
	hosts := append([]string{cfg.AdvertisedAPI(ln.Addr().String()), ln.Addr().String()}, cfg.APIHosts...)
	t := httpserve.TLS{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, Insecure: cfg.InsecureHTTP, InsecureFlag: "insecure_http (-insecure-http)",
		Cluster: func() (*tls.Config, error) {
			srv, err := pki.NewAPIServer(ca, hosts, nil)
			if err != nil {
				return nil, err
			}
			return srv.TLSConfig(), nil
		}}
	tc, err := t.For(ln.Addr(), log)
	return ca, tc, err
}
