// Package app wires central together, the store, the sync hub and the
// API on one listener, and runs it until the context ends; then it ends
// the event streams and the site sessions, shuts the server down and
// closes the store, in that order.
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

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/central/internal/api"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/syncproto"
)

// Run starts central and blocks until ctx ends or it fails. out receives
// the few lines meant for the operator at a terminal (where central
// listens, the first admin token).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	db, err := store.Open(cfg.StorePath())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := ensureAdminToken(db, cfg, log, out); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	h := hub.New(hub.Config{Store: db, Log: log, Heartbeat: time.Duration(cfg.Heartbeat), WriteTimeout: time.Duration(cfg.WriteTimeout)})
	mux := http.NewServeMux()
	mux.Handle(syncproto.Path, h)
	mux.Handle("/", api.New(api.Config{Store: db, Hub: h, Log: log}).Handler())
	// Requests (event streams) end with base, which ends before Shutdown.
	base, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	url := cfg.Scheme() + "://" + ln.Addr().String()
	wsURL := map[string]string{"http": "ws", "https": "wss"}[cfg.Scheme()] + "://" + ln.Addr().String() + syncproto.Path
	fmt.Fprintf(out, "outpost central: API at %s, sites sync at %s (data %s)\n", url, wsURL, cfg.DataDir)
	log.Info("central started", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "", "data_dir", cfg.DataDir)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if cfg.TLSCert != "" {
			return srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		}
		return srv.Serve(ln)
	})
	g.Go(func() error {
		<-ctx.Done()
		endRequests()
		h.Close() // Shutdown does not close hijacked connections
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err = g.Wait()
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("central stopped")
	return err
}

// ensureAdminToken creates the first admin token if central has none: it
// is saved to the data directory (mode 0600) and printed once, never
// logged.
func ensureAdminToken(db *store.DB, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	if db.HasTokens() {
		fmt.Fprintf(out, "authenticate with the admin token in %s (Authorization: Bearer <token>)\n", cfg.AdminTokenPath())
		return nil
	}
	token, rec := store.NewToken("admin")
	if err := os.WriteFile(cfg.AdminTokenPath(), []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("save admin token: %w", err)
	}
	if err := db.CreateToken(rec); err != nil {
		os.Remove(cfg.AdminTokenPath())
		return fmt.Errorf("create admin token: %w", err)
	}
	log.Info("created the first admin token", "id", rec.ID, "file", cfg.AdminTokenPath())
	fmt.Fprintf(out, "admin token (shown once; also saved to %s):\n  %s\n", cfg.AdminTokenPath(), token)
	return nil
}
