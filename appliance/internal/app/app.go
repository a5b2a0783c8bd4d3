// Package app wires the appliance's subsystems together and runs them
// until the context ends, then stops them in order: the API first, then
// Raft (handing off leadership), then the store.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/console"
	"github.com/outposthq/outpost/appliance/internal/dhcp"
	"github.com/outposthq/outpost/appliance/internal/httpboot"
	"github.com/outposthq/outpost/appliance/internal/phasewatch"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/sol"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/syncclient"
	"github.com/outposthq/outpost/appliance/internal/tftp"
	"github.com/outposthq/outpost/internal/clock"
	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/tracing"
)

// Run starts the appliance and blocks until ctx ends or a subsystem fails.
// out receives the few lines meant for the operator at a terminal (where
// the API is, the first admin token).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := checkDataDir(cfg); err != nil {
		return err
	}
	fresh := isFresh(cfg)
	log = slog.New(tracing.LogHandler(log.Handler()))
	clk, err := labClock(log)
	if err != nil {
		return err
	}
	setNice(cfg.Raft.Nice, log)
	spans, stopTracing, err := startTracing(cfg, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	db, err := store.Open(cfg.StorePath())
	if err != nil {
		return err
	}
	defer db.Close()

	key, err := siteKey(cfg, fresh)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	defer ln.Close()

	node, err := openCluster(cfg, db, key, log)
	if err != nil {
		return err
	}
	defer node.Close()
	node.SetSpanStore(spans.Store)

	if key == nil || cfg.Join != "" && !node.Joined() {
		// A new node joining a cluster gets the site key and its
		// certificate from it; one whose join was cut short (or that was
		// removed) joins again.
		if key, err = joinSite(ctx, cfg, node, key, log); err != nil {
			return err
		}
	}
	n := cluster.NewSite(node, site.ProposerConfig{Key: key, BootURL: cfg.BootURL, Now: clk.Now,
		Steps: clock.NewStepGuard(clk.Now, clock.Monotonic(), log.With("component", "site"))})
	central, err := centralClient(cfg)
	if err != nil {
		return err
	}
	artStore, arts, err := openArtifacts(cfg, n, central, log)
	if err != nil {
		return err
	}
	apiCA, apiTLSConfig, err := apiTLS(cfg, key, ln, log, out)
	if err != nil {
		return err
	}
	toLeader, err := leaderClient(cfg, apiCA)
	if err != nil {
		return err
	}

	// The machines' serial consoles, held by the leader.
	consoles := sol.New(sol.Config{Store: db, Key: key, Leader: node, Log: log.With("component", "sol")})
	defer consoles.Close()
	reg := newRegistry()
	reg.MustRegister(arts.Collector())
	reg.MustRegister(raftCollectors(node)...)
	reg.MustRegister(watchSubnets(node, log))
	metrics := httpserve.NewMetrics(reg)
	apiHandler := api.New(api.Config{Site: n.Proposer, Store: db, Cluster: node,
		SiteKey: key, Log: log, Registry: reg, Console: api.ConsoleConfig{Sessions: consoles, Client: toLeader},
		APICA: string(apiCA.CertificatePEM()), APICAFingerprint: apiCA.Fingerprint(), Artifacts: arts, Traces: node,
		Now: n.Now}).Handler()
	fmt.Fprintf(out, "outpost appliance %s: API at %s (raft %s, data %s)\n", cfg.NodeID, cfg.APIURL, cfg.RaftAdvertise, cfg.DataDir)

	media, err := newMediaServer(mediaConfig{DB: db, Credentials: agentCredentials(key), Artifacts: artStore,
		ArtifactDir: cfg.ArtifactDir, BootURL: cfg.BootURL, Dir: filepath.Join(cfg.DataDir, "vmedia"),
		Log: log.With("component", "vmedia")})
	if err != nil {
		return err
	}
	runBoot, err := bootServices(cfg, n, key, log, metrics, artStore, arts, spans, media)
	if err != nil {
		return err
	}
	// Sync with central runs on the leader, when configured.
	var syncer *syncclient.Client
	if cfg.CentralURL != "" {
		if syncer, err = syncclient.New(syncclient.Config{Node: n, Store: db, URL: cfg.CentralURL, Site: cfg.SiteID,
			CredentialFile: cfg.SiteCredentialFile, Insecure: cfg.InsecureCentral, HTTPClient: central, Log: log,
			Report: selfReport(node.Status, cfg.APIURL), Spans: node}); err != nil {
			return err
		}
	}
	// The web console answers every path but /v1/, which is the API's.
	web, err := console.New(console.Config{Store: db, Site: n.Proposer, Cluster: node, SiteKey: key,
		Lookup: api.TokenLookup(db), API: apiHandler, Metrics: reg, Traces: node, Now: n.Now, Log: log.With("component", "console")})
	if err != nil {
		return err
	}
	srv := apiServer(cfg, web.Handler(), log, metrics,
		// Requests (event streams) end with ctx (the errgroup's by the
		// time Serve calls this), so Shutdown need not wait for them.
		func(net.Listener) context.Context { return ctx })
	fmt.Fprintf(out, "web console at %s/ (sign in with a token)\n", cfg.APIURL)
	jobRunner, err := newJobRunner(cfg, n, key, media, log)
	if err != nil {
		return err
	}
	// The site's own histogram of its provisions' phases, WAN or not.
	phases, err := phasewatch.New(phasewatch.Config{Store: spans.Store, Traces: node, Metrics: phasewatch.NewMetrics(reg),
		Log: log.With("component", "phasewatch")})
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, ln, apiTLSConfig) })
	runBoot(ctx, g)
	g.Go(func() error { return jobRunner.Run(ctx) })
	g.Go(func() error { return consoles.Run(ctx) })
	g.Go(func() error { return node.RegisterSelf(ctx) })
	g.Go(func() error { return arts.Run(ctx) })
	g.Go(func() error { return phases.Run(ctx) })
	g.Go(func() error { return watchWrites(ctx, node, n, log.With("component", "writes")) })
	if syncer != nil {
		g.Go(func() error { return syncer.Run(ctx) })
	}
	if cfg.Join == "" {
		g.Go(func() error { return ensureAdminToken(ctx, n, cfg, log, out) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("stopping", "id", cfg.NodeID)
	return err
}

// newRegistry holds every subsystem's metrics, served at /metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(dhcp.Collectors()...)
	reg.MustRegister(tftp.Collectors()...)
	reg.MustRegister(provision.Collectors()...)
	reg.MustRegister(httpboot.Collectors()...)
	return reg
}

// isFresh reports whether the data directory has never held a node.
func isFresh(cfg *config.Config) bool {
	_, err1 := os.Stat(cfg.StorePath())
	_, err2 := os.Stat(cfg.RaftDir())
	return errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist)
}

// siteKey loads the site key. A fresh bootstrap node makes one; a fresh
// joining node returns nil and gets it from the cluster. A node with data
// but no key stops: its sealed secrets would be unreadable.
func siteKey(cfg *config.Config, fresh bool) (*seal.Key, error) {
	path := cfg.SiteKeyPath()
	if _, err := os.Stat(path); err == nil {
		return seal.Load(path)
	}
	switch {
	case fresh && cfg.Join != "":
		return nil, nil
	case fresh:
		k, _, err := seal.LoadOrCreate(path)
		return k, err
	}
	return nil, fmt.Errorf("site key %s is missing but %s holds data: restore the key file from another appliance of the site", path, cfg.DataDir)
}

// ensureAdminToken creates the first admin token once the bootstrap node
// leads, if the site has none: it is written to the data directory (mode
// 0600) and printed once.
func ensureAdminToken(ctx context.Context, n *cluster.Site, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	// Wait until this node leads (it can create the token) or a token has
	// replicated to it (another node made one, or this is a restart).
	for !n.IsLeader() && !hasTokens(n.DB()) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	if hasTokens(n.DB()) {
		fmt.Fprintf(out, "authenticate with the admin token in %s (Authorization: Bearer <token>)\n", cfg.AdminTokenPath())
		return nil
	}
	// The file appears once the token is stored: whoever reads it may
	// use it at once.
	if err := conf.AdminTokenFree(cfg.AdminTokenPath()); err != nil {
		return err
	}
	token, rec := api.NewToken("admin")
	if err := n.CreateToken(ctx, rec); err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	if err := conf.SaveAdminToken(cfg.AdminTokenPath(), token); err != nil {
		return err
	}
	log.Info("created the first admin token", "id", rec.ID, "file", cfg.AdminTokenPath())
	fmt.Fprintf(out, "admin token (shown once; also saved to %s):\n  %s\n", cfg.AdminTokenPath(), token)
	return nil
}

func hasTokens(db *store.DB) bool {
	n := 0
	_ = db.View(func(tx *store.Tx) error { n = store.Count[store.Token](tx); return nil })
	return n > 0
}

// startTracing opens the node's span store (a damaged file is an error
// naming it) and starts the program's tracing provider, which records
// this node's spans there (and by OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
// is set). The spans agents send are kept there too, and relayed by
// OTLP (spans). stop flushes the spans and closes the store.
func startTracing(cfg *config.Config, log *slog.Logger) (spans tracing.Received, stop func(), err error) {
	store, err := tracing.OpenStore(cfg.SpansPath(), 0)
	if err != nil {
		return spans, nil, fmt.Errorf("%s: %w", cfg.SpansPath(), err)
	}
	p, err := tracing.Start(tracing.Config{Service: "applianced", Node: cfg.NodeID, Store: store, Log: log.With("component", "tracing")})
	if err != nil {
		store.Close()
		return spans, nil, err
	}
	return tracing.Received{Store: store, Provider: p}, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed at stop", "err", err)
		}
		store.Close()
	}, nil
}
