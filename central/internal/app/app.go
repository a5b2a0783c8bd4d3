// Package app wires central together, the store, the sync hub, the
// node's artifacts, and the API with the portal in front of it, on one
// listener, and runs it until the context ends; then it ends the event
// streams and the site sessions, shuts the server down and closes the
// store, in that order.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/outposthq/outpost/central/internal/api"
	"github.com/outposthq/outpost/central/internal/artifacts"
	"github.com/outposthq/outpost/central/internal/cluster"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/central/internal/traces"
	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// Run starts central and blocks until ctx ends or it fails. out receives
// the few lines meant for the operator at a terminal (where central
// listens, the first admin token).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := checkDataDir(cfg); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	apiURL := cfg.AdvertisedAPI(ln.Addr().String())

	// A node joining a cluster gets central's key first, if it has none:
	// the store opens with it. It asks to join at every start (a no-op
	// for a member), so that a node stopped between the two joins later.
	joining := cfg.Replicated() && cfg.Join != ""
	var joiner *joinClient
	if joining {
		if joiner, err = newJoinClient(cfg, apiURL); err != nil {
			return err
		}
		if _, err := os.Stat(store.KeyFile(cfg.StorePath())); errors.Is(err, os.ErrNotExist) {
			if err := joiner.admit(ctx, cfg, log); err != nil {
				return err
			}
		}
	}
	db, err := store.Open(cfg.StorePath())
	if err != nil {
		return err
	}
	defer db.Close()
	// Log lines written in a span carry its trace and span ids.
	log = slog.New(tracing.LogHandler(log.Handler()))

	mux := http.NewServeMux()
	// peer is what this node serves the other members for itself: the
	// command types it applies, and its artifacts once they are open.
	peer := http.NewServeMux()
	peer.Handle("GET "+cluster.CommandsPath, cluster.CommandsHandler())
	var node *cluster.Node
	if cfg.Replicated() {
		if node, err = openCluster(ctx, cfg, db, joiner, mux, peer, apiURL, log); err != nil {
			return err
		}
		defer node.Close()
	}
	reg := newRegistry()
	keeper := traces.New(db, reg, log)
	prov, err := startTracing(cfg, keeper, log)
	if err != nil {
		return err
	}
	// Central's last spans are written before the store closes.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = prov.Shutdown(sctx)
	}()
	arts, err := openArtifacts(cfg, db, node, peer, reg, log)
	if err != nil {
		return err
	}

	apiCA, tlsCfg, err := apiTLS(cfg, db, ln, log, out)
	if err != nil {
		return err
	}
	h := hub.New(hub.Config{Store: db, Log: log, Heartbeat: time.Duration(cfg.Heartbeat), WriteTimeout: time.Duration(cfg.WriteTimeout),
		MaxPending: cfg.MaxPendingHandshakes, Node: cfg.NodeID, Spans: keeper})
	// The fleet's sites show the sessions this node holds: the leader,
	// which serves the fleet's reads, holds them all.
	db.SetLive(h.Live)
	apiCfg := api.Config{Store: db, Hub: h, Log: log, APICA: string(apiCA.CertificatePEM()), APICAFingerprint: apiCA.Fingerprint(),
		Artifacts: arts, Metrics: reg}
	mux.Handle(syncproto.Path, h)
	var handler http.Handler = mux
	if node != nil {
		apiCfg.Cluster = node
		// Sites connected here came through this node while it led:
		// send them away to reconnect through the new leader.
		node.OnLeadership(func(leader bool) {
			if !leader {
				h.EndSessions("this central node stopped leading; reconnect")
			}
		})
		handler = toLeader(node, mux, log)
	}
	apiSrv := api.New(apiCfg)
	front, err := withPortal(db, services(db, apiSrv), apiSrv.Handler(), log)
	if err != nil {
		return err
	}
	mux.Handle("/", front)
	// Requests (event streams) end with base, which ends before Shutdown.
	base, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv := httpserve.New(httpserve.Config{Name: "central", Handler: handler, Limits: cfg.Limits, Log: log,
		Shape: shape(cfg), Metrics: httpserve.NewMetrics(reg), BaseContext: func(net.Listener) context.Context { return base }})
	wsURL := map[bool]string{false: "ws", true: "wss"}[tlsCfg != nil] + "://" + ln.Addr().String() + syncproto.Path
	if node != nil {
		fmt.Fprintf(out, "outpost central %s: API at %s, sites sync at %s (raft %s, data %s)\n", cfg.NodeID, apiURL, wsURL, cfg.RaftAddr, cfg.DataDir)
	} else {
		fmt.Fprintf(out, "outpost central: API at %s, sites sync at %s (data %s)\n", apiURL, wsURL, cfg.DataDir)
	}
	log.Info("central started", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "data_dir", cfg.DataDir, "raft", cfg.RaftAddr)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return arts.Run(ctx) })
	g.Go(func() error {
		if tlsCfg != nil {
			srv.HTTP.TLSConfig = tlsCfg
			return srv.HTTP.ServeTLS(srv.Listen(ln), "", "")
		}
		return srv.HTTP.Serve(srv.Listen(ln))
	})
	g.Go(func() error {
		<-ctx.Done()
		endRequests()
		h.Close() // Shutdown does not close hijacked connections
		sctx, cancel := context.WithTimeout(context.Background(), httpserve.ShutdownGrace)
		defer cancel()
		return srv.HTTP.Shutdown(sctx)
	})
	switch {
	case joining:
		g.Go(func() error {
			return joiner.join(ctx, &store.Member{ID: cfg.NodeID, RaftAddr: advertisedRaft(cfg), APIURL: apiURL,
				Fingerprint: node.Identity().Fingerprint()}, log)
		})
	case node != nil && cfg.Join == "":
		g.Go(func() error { return ensureAdminTokenOnLeader(ctx, node, db, cfg, log, out) })
	case node == nil:
		if err := ensureAdminToken(db, cfg, log, out); err != nil {
			return err
		}
	}
	err = g.Wait()
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("central stopped")
	return err
}

// startTracing starts central's tracing provider: its spans go through
// the replicated store like its sites' (keeper), and by OTLP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set.
func startTracing(cfg *config.Config, keeper *traces.Keeper, log *slog.Logger) (*tracing.Provider, error) {
	node := cfg.NodeID
	if node == "" {
		node, _ = os.Hostname()
	}
	p, err := tracing.Start(tracing.Config{Service: "centrald", Node: node, Send: keeper.Send, Log: log})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return p, nil
}

// newRegistry holds this node's metrics, served at /metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// openArtifacts opens this node's copy of the artifacts and serves it to
// the other members on peer.
func openArtifacts(cfg *config.Config, db *store.DB, node *cluster.Node, peer *http.ServeMux, reg prometheus.Registerer, log *slog.Logger) (*artifacts.Node, error) {
	acfg := artifacts.Config{DB: db, Dir: cfg.ArtifactDir(), Registry: reg, Log: log}
	if n := int64(cfg.ArtifactUpstreamLimit); n > 0 {
		acfg.Limit = rate.NewLimiter(rate.Limit(n), int(min(n, 1<<20)))
	}
	if node != nil {
		acfg.Cluster = node
	}
	arts, err := artifacts.New(acfg)
	if err != nil {
		return nil, err
	}
	peer.Handle(cluster.PeerPrefix+"artifacts/", arts.PeerHandler())
	return arts, nil
}

// shape gives an artifact's upload its size and time (max_artifact_size,
// limits.upload_timeout, cut if it stalls) and every other request a
// JSON body's.
func shape(cfg *config.Config) func(*http.Request) httpserve.Shape {
	upload := httpserve.Shape{MaxBody: cfg.MaxArtifactSize, Upload: true}
	return func(r *http.Request) httpserve.Shape {
		if api.IsUpload(r) {
			return upload
		}
		return httpserve.JSON
	}
}

// ensureAdminTokenOnLeader waits until the bootstrap node leads, or a
// token replicated to it (a restart), then makes sure there is one.
func ensureAdminTokenOnLeader(ctx context.Context, node *cluster.Node, db *store.DB, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	for !node.IsLeader() && !db.HasTokens() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return ensureAdminToken(db, cfg, log, out)
}

func advertisedRaft(cfg *config.Config) string {
	if cfg.RaftAdvertise != "" {
		return cfg.RaftAdvertise
	}
	return cfg.RaftAddr
}

// ensureAdminToken creates the first admin token if central has none: it
// is saved to the data directory (mode 0600) and printed once, never
// logged.
func ensureAdminToken(db *store.DB, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	if db.HasTokens() {
		fmt.Fprintf(out, "authenticate with the admin token in %s (Authorization: Bearer <token>)\n", cfg.AdminTokenPath())
		return nil
	}
	// The file appears once the token is stored, as at a site: whoever
	// reads it (a joining node, a script) may use it at once.
	if err := conf.AdminTokenFree(cfg.AdminTokenPath()); err != nil {
		return err
	}
	token, rec := store.NewToken("admin")
	if err := db.CreateToken(rec); err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	if err := conf.SaveAdminToken(cfg.AdminTokenPath(), token); err != nil {
		return err
	}
	log.Info("created the first admin token", "id", rec.ID, "file", cfg.AdminTokenPath())
	fmt.Fprintf(out, "admin token (shown once; also saved to %s):\n  %s\n", cfg.AdminTokenPath(), token)
	return nil
}
