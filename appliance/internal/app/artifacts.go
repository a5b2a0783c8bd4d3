package app

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/internal/artifact"
)

// The node's artifacts (package artifacts): its own store, kept as the
// site's records say by a replicator that copies from peers over the
// Raft port and, on the leader, pulls from central.

// openArtifacts opens the node's artifact store and its replicator, and
// serves the store to the other members on the Raft port.
func openArtifacts(cfg *config.Config, n *cluster.Site, central *http.Client, log *slog.Logger) (*artifact.Store, *artifacts.Node, error) {
	st, err := artifact.Open(cfg.ArtifactStorePath())
	if err != nil {
		return nil, nil, err
	}
	c := artifacts.Central{Site: cfg.SiteID, CredentialFile: cfg.SiteCredentialFile, Client: central}
	if cfg.CentralURL != "" {
		c.Bases = cfg.CentralBases()
	}
	arts, err := artifacts.New(artifacts.Config{
		ID: cfg.NodeID, Store: st, DB: n.DB(), Site: n, Peers: n.PeerClient(), Central: c,
		ArtifactDir: cfg.ArtifactDir, Grace: time.Duration(cfg.ArtifactGrace), WANLimit: int64(cfg.ArtifactWANLimit), Now: n.Now,
		Log: log.With("component", "artifacts"),
	})
	if err != nil {
		return nil, nil, err
	}
	n.SetArtifactHandler(arts.Handler())
	return st, arts, nil
}

// centralClient is the HTTP client that reaches central, for the sync
// client and the artifacts alike: central's certificate verified by the
// pinned CA (central_ca_fingerprint) or central_ca_file's (else the
// system's roots), proxies from the environment.
func centralClient(cfg *config.Config) (*http.Client, error) {
	roots, err := cfg.CentralRoots()
	if err != nil {
		return nil, err
	}
	tc, err := cfg.CentralTLS()
	if err != nil {
		return nil, err
	}
	if tc == nil {
		tc = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tc}}, nil
}
