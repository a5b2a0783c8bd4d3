package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/dhcp"
	"github.com/outposthq/outpost/appliance/internal/httpboot"
	"github.com/outposthq/outpost/appliance/internal/linklocal"
	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/metadata"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/tftp"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/clock"
	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/tracing"
)

// tftpReadBuffer is the TFTP socket's receive buffer.
const tftpReadBuffer = 4 << 20

// bootServices binds the boot network's services (DHCP, TFTP, boot
// HTTP) that the configuration turns on, and returns a function that
// serves them under g until ctx ends. Binding happens here, at start-up,
// so that a port already taken stops the appliance with a clear error.
// The services share one index of the machines' traces; the agents'
// spans are kept by spans (this node's span store, relayed by OTLP).
func bootServices(cfg *config.Config, n *cluster.Site, key *seal.Key, log *slog.Logger, metrics *httpserve.Metrics,
	store *artifact.Store, peers httpboot.Peers, spans tracing.Received, media *mediaServer) (func(ctx context.Context, g *errgroup.Group), error) {
	var runs []func(ctx context.Context, g *errgroup.Group)
	traces := machinetrace.New(n.DB(), machinetrace.Config{Off: !spans.Provider.Recording()})
	_, portStr, _ := net.SplitHostPort(cfg.BootAddr)
	port, _ := strconv.Atoi(portStr)
	var grub tftp.Generator // GRUB's per-machine configurations, over TFTP
	if cfg.BootAddr != "" {
		mdLog := log.With("component", "metadata")
		md, err := metadata.New(metadata.Config{DB: n.DB(), Key: key.Derive("outpost metadata v1"), Traces: traces, Now: n.Now,
			Steps: clock.NewStepGuard(n.Now, clock.Monotonic(), mdLog), Log: mdLog})
		if err != nil {
			return nil, err
		}
		handler, hb, err := bootHandler(cfg, n, key, log, store, peers, traces, spans, md, media)
		if err != nil {
			return nil, err
		}
		grub = hb.GRUB(port)
		if run, err := linkLocalMetadata(cfg, n, md, log, metrics); err != nil {
			return nil, err
		} else if run != nil {
			runs = append(runs, run)
		}
		ln, err := net.Listen("tcp", cfg.BootAddr)
		if err != nil {
			return nil, fmt.Errorf("boot http: %w", err)
		}
		srv := bootServer(cfg, handler, log, metrics)
		log.Info("boot http listening", "addr", ln.Addr().String(), "artifacts", cfg.ArtifactDir)
		runs = append(runs, func(ctx context.Context, g *errgroup.Group) {
			g.Go(func() error { return srv.Serve(ctx, ln, nil) })
		})
	}
	if cfg.TFTPAddr != "" {
		ts, err := tftp.New(tftp.Config{Root: cfg.ArtifactDir, MaxTransfers: cfg.TFTPMaxTransfers, MaxWindow: cfg.TFTPMaxWindow, Log: log.With("component", "tftp"),
			Traces: traces, Generator: grub})
		if err != nil {
			return nil, err
		}
		conn, err := net.ListenPacket("udp4", cfg.TFTPAddr)
		if err != nil {
			return nil, fmt.Errorf("tftp: %w", err)
		}
		// A rack powered on at once sends its read requests together:
		// room for them, as for DHCP, rather than drops and retries.
		if uc, ok := conn.(*net.UDPConn); ok {
			uc.SetReadBuffer(tftpReadBuffer)
		}
		log.Info("tftp listening", "addr", conn.LocalAddr().String(), "root", cfg.ArtifactDir)
		runs = append(runs, func(ctx context.Context, g *errgroup.Group) {
			g.Go(func() error { return ts.Serve(ctx, conn) })
		})
	}
	if len(cfg.DHCPInterfaces) > 0 {
		files := dhcp.DefaultBootFiles
		files.EFIx64 = cfg.EFIBinary
		ds, err := dhcp.New(dhcp.Config{
			Interfaces: cfg.DHCPInterfaces, Proxy: cfg.DHCPProxy, HTTPPort: port, Files: files,
			Leader: n, Leases: n, Store: n.DB(), Traces: traces, Now: n.Now, Monotonic: clock.Monotonic(), Log: log.With("component", "dhcp"),
			OfferHold:          time.Duration(cfg.DHCP.OfferHold),
			Quarantine:         time.Duration(cfg.DHCP.DeclineQuarantine),
			ProbeWait:          probeWait(cfg.DHCP.ProbeWait),
			ConflictQuarantine: time.Duration(cfg.DHCP.ConflictQuarantine),
		})
		if err != nil {
			return nil, err
		}
		if err := ds.Listen(); err != nil {
			return nil, err
		}
		runs = append(runs, func(ctx context.Context, g *errgroup.Group) {
			g.Go(func() error { return ds.Serve(ctx) })
		})
	}
	runs = append(runs, func(ctx context.Context, g *errgroup.Group) {
		g.Go(func() error {
			return provision.RunTimer(ctx, n, n.DB(), time.Second, log.With("component", "workflow-timer"))
		})
	})
	return func(ctx context.Context, g *errgroup.Group) {
		for _, run := range runs {
			run(ctx, g)
		}
	}, nil
}

// probeWait is dhcp.Config's ProbeWait for the configured one, where 0
// means no probe (dhcp.Config's zero is its default, and negative off).
func probeWait(d conf.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return time.Duration(d)
}

// bootHandler is everything a machine reaches over HTTP on the boot
// network, on one port: iPXE scripts and artifacts (those of the
// artifact directory, and the content-addressed ones of store, or of a
// peer), the agent API (whose spans it keeps in spans), and the metadata
// service.
func bootHandler(cfg *config.Config, n *cluster.Site, key *seal.Key, log *slog.Logger, store *artifact.Store, peers httpboot.Peers,
	traces *machinetrace.Index, spans provision.SpanKeeper, md *metadata.Server, media *mediaServer) (http.Handler, *httpboot.Server, error) {
	creds := agentCredentials(key)
	// Where this node hands out no addresses, credentials go to the
	// first address that claims them (package provision).
	binding := provision.BindLease
	if cfg.DHCPProxy || len(cfg.DHCPInterfaces) == 0 {
		binding = provision.BindFirstClaim
	}
	hb, err := httpboot.New(httpboot.Config{DB: n.DB(), ArtifactDir: cfg.ArtifactDir, Credentials: creds,
		Binding: binding, Binder: n, DiscoveryTTL: time.Duration(cfg.Discovery.CredentialTTL),
		Artifacts: store, Peers: peers, Traces: traces, Now: n.Now, Log: log.With("component", "httpboot")})
	if err != nil {
		return nil, nil, err
	}
	agents := provision.New(provision.Config{Site: n, Store: n.DB(), Credentials: creds, Binding: binding,
		DiscoveryBurst: cfg.Discovery.Burst, DiscoveryEvery: time.Duration(cfg.Discovery.Every),
		Spans: spans, Now: n.Now, Log: log.With("component", "agent-api")})
	mux := http.NewServeMux()
	mux.Handle("/", hb.Handler())
	mux.Handle(provision.Prefix, agents.Handler())
	if media != nil {
		mux.Handle(mediaPrefix, media)
	}
	mountMetadata(mux, md)
	return mux, hb, nil
}

// agentCredentials makes the workflows' agent credentials from the
// site key: the boot scripts' and the virtual media's.
func agentCredentials(key *seal.Key) *provision.Credentials {
	return provision.NewCredentials(key.Derive("outpost agent credentials v1"))
}

// mountMetadata mounts the metadata service's routes on mux.
func mountMetadata(mux *http.ServeMux, md *metadata.Server) {
	mdh := md.Handler()
	for _, p := range metadata.Prefixes() {
		mux.Handle(p, mdh)
	}
}

// linkLocalMetadata returns what serves the metadata service on
// 169.254.169.254:80 of the DHCP interfaces while this node leads (the
// address follows leadership), or nil where the configuration turns that
// off or serves no DHCP.
func linkLocalMetadata(cfg *config.Config, n *cluster.Site, md *metadata.Server, log *slog.Logger, metrics *httpserve.Metrics) (func(ctx context.Context, g *errgroup.Group), error) {
	if !cfg.MetadataLinkLocal || len(cfg.DHCPInterfaces) == 0 {
		return nil, nil
	}
	mux := http.NewServeMux()
	mountMetadata(mux, md)
	// Each term of leadership serves on a listener of its own: a new
	// server each time (an http.Server does not serve again after its
	// shutdown), under the boot server's limits and metrics.
	serve := func(ctx context.Context, ln net.Listener) error {
		return httpserve.New(httpserve.Config{Name: "metadata-link-local", Handler: mux, Limits: cfg.BootLimits,
			Shape: bootShape, Log: log, Metrics: metrics}).Serve(ctx, ln, nil)
	}
	h, err := linklocal.New(linklocal.Config{Interfaces: cfg.DHCPInterfaces, Serve: serve, Leader: n,
		Log: log.With("component", "linklocal")})
	if err != nil {
		return nil, err
	}
	n.OnLeadership(h.SetLeader)
	h.SetLeader(n.IsReadyLeader())
	return func(ctx context.Context, g *errgroup.Group) {
		g.Go(func() error { return h.Run(ctx) })
	}, nil
}
