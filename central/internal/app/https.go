package app

import (
	"crypto/tls"
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
	hosts := append([]string{cfg.AdvertisedAPI(ln.Addr().String()), ln.Addr().String()}, cfg.APIHosts...)
	t := httpserve.TLS{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, Insecure: cfg.InsecureHTTP, InsecureFlag: "insecure_http (-insecure-http)"}
	tc, err := t.Publish(ca, cfg.APICAPath(), "central API CA", ": sites pin it with central_ca_fingerprint, the CLI with --ca-fingerprint",
		hosts, ln.Addr(), log, out)
	return ca, tc, err
}
