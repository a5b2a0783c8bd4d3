package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/outposthq/outpost/internal/limit"
	"github.com/outposthq/outpost/internal/ratelog"
)

// Config configures a server.
type Config struct {
	// Name names the server in its log lines and metrics: "api",
	// "boot", "central".
	Name string
	// Handler serves the requests.
	Handler http.Handler
	// Limits are the server's deadlines and caps.
	Limits Limits
	// Shape chooses a request's shape; nil gives every request JSON.
	Shape func(*http.Request) Shape
	// Log receives the server's errors and its refused connections (at
	// most one line per source per minute). Nil discards.
	Log *slog.Logger
	// Metrics receives the server's metrics; nil keeps none.
	Metrics *Metrics
	// BaseContext is the http.Server's: the context requests start
	// from. Nil is context.Background.
	BaseContext func(net.Listener) context.Context
}

// ShutdownGrace is how long Serve lets requests under way finish once
// its context ends.
const ShutdownGrace = 5 * time.Second

// Server is an http.Server held to its Limits. Its connections go
// through Listen, its requests through a guard that gives each its
// deadlines.
type Server struct {
	// HTTP is the server proper, for Serve or ServeTLS on a listener
	// from Listen, and Shutdown.
	HTTP *http.Server

	name                                     string
	shape                                    func(*http.Request) Shape
	bodyTimeout, uploadTimeout, writeTimeout time.Duration
	slots                                    *limit.Slots
	m                                        serverMetrics
	refused                                  *ratelog.Log
}

// New returns a server.
func New(cfg Config) *Server {
	l := cfg.Limits.withDefaults()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("server", cfg.Name)
	s := &Server{
		name: cfg.Name, shape: cfg.Shape,
		bodyTimeout:   time.Duration(l.BodyTimeout),
		uploadTimeout: time.Duration(l.UploadTimeout),
		writeTimeout:  time.Duration(l.WriteTimeout),
		slots:         limit.New(l.MaxConns, l.MaxConnsPerSource),
		m:             cfg.Metrics.server(cfg.Name),
		refused:       ratelog.New(ratelog.Config{Log: log, Level: slog.LevelWarn, Message: "connection refused: cap reached"}),
	}
	if s.shape == nil {
		s.shape = func(*http.Request) Shape { return JSON }
	}
	s.HTTP = &http.Server{
		Handler:           s.guard(cfg.Handler),
		ReadHeaderTimeout: time.Duration(l.HeaderTimeout),
		// The backstop of writes the guard does not see (the server's
		// own error answers); the guard gives every handler's write its
		// own deadline.
		WriteTimeout: time.Duration(l.WriteTimeout),
		IdleTimeout:  time.Duration(l.IdleTimeout),
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:  cfg.BaseContext,
	}
	return s
}

// Listen wraps ln so that the server's connections stay within its caps.
func (s *Server) Listen(ln net.Listener) net.Listener {
	return &listener{Listener: ln, slots: s.slots, m: s.m, refused: s.refused}
}

// Serve serves ln, HTTPS with tlsCfg when it is not nil (see TLS.For),
// until ctx ends; then it shuts the server down, letting requests under
// way finish within ShutdownGrace, and returns ctx's error. A failure to
// serve is returned at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsCfg *tls.Config) error {
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			s.HTTP.TLSConfig = tlsCfg
			errc <- s.HTTP.ServeTLS(s.Listen(ln), "", "")
		} else {
			errc <- s.HTTP.Serve(s.Listen(ln))
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return ctx.Err()
		}
		return fmt.Errorf("http %s %s: %w", s.name, ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	_ = s.HTTP.Shutdown(sctx)
	return ctx.Err()
}
