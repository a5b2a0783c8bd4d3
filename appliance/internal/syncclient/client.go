package syncclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/syncproto"
)

// Defaults of Config's timing. The backoff stays short: a dial is one
// cheap connection attempt per site, and a site back on the WAN should
// catch up within seconds, not wait out a long backoff.
const (
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultLongBackoff = 5 * time.Minute
)

// Node is what the client needs of this appliance node: it works while
// the node is the site's ready leader, and proposes central's revisions
// and acknowledgements (package site's proposer, which seals, draws
// nonces and fills boot values as it does for the site's own writes).
type Node interface {
	ID() string
	IsReadyLeader() bool
	LeaderEpoch() uint64
	ApplyDesired(ctx context.Context, d *site.Desired) (site.Result, *site.DesiredResult, error)
	AckEvents(ctx context.Context, seq uint64) error
	RecordLink(ctx context.Context, r site.LinkReport) error
}

// Config configures a Client.
type Config struct {
	Node Node
	// Store is this node's store: the sync cursors and the outbox of
	// events are read from it.
	Store *store.DB
	// URL is central's sync URL: wss://, or an https:// base URL to
	// which syncproto.Path is appended (see SyncURL). A replicated
	// central's nodes may be listed, separated by commas: after a failed
	// connection the client tries the next (any node takes the site, and
	// sends it on to the leader). ws:// and http:// are refused unless
	// Insecure is set.
	URL string
	// Insecure allows ws:// and http:// URLs, over which the credential,
	// the events and the BMC passwords central sends cross the network
	// in the clear. For labs only.
	Insecure bool
	// RootCAs verifies central's certificate: the CAs that may sign it,
	// for a central with a private CA. Nil: the system's roots.
	RootCAs *x509.CertPool
	// TLS, when set, verifies central instead of RootCAs: the client
	// configuration that pins central's API CA (pki.PinnedTLS with
	// central_ca_fingerprint).
	TLS *tls.Config
	// Site is the site's id at central.
	Site string
	// CredentialFile holds the site's credential. It is read at each
	// connection, so an operator can fix it without a restart.
	CredentialFile string
	// HTTPClient dials central; nil means a client that verifies
	// central's certificate with RootCAs and takes proxies from the
	// environment. A client given here is used as it is.
	HTTPClient *http.Client
	// Log receives the client's logs; nil discards them.
	Log *slog.Logger
	// Report, if set, says what the site reports of itself in its hello
	// and heartbeats (syncproto.Report: its release, its cluster's
	// health, its console); the client adds its newest event's sequence.
	Report func() *syncproto.Report
	// Spans, if set, are the site's nodes' span stores: on a connection
	// of version 2 or later the client forwards their spans to central
	// (spans.go). SpanInterval is how often it looks for new ones
	// (DefaultSpanInterval if zero).
	Spans        SpanSource
	SpanInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between connections;
	// LongBackoff is the wait after central refused the site. Zero
	// means the Default values.
	MinBackoff, MaxBackoff, LongBackoff time.Duration
}

// Client keeps the site in sync with central while its node leads.
type Client struct {
	cfg  Config
	urls []string
	turn int // index into urls of the next connection (Run only)
	log  *slog.Logger

	connected atomic.Bool
	// batch is how many events go in one message (batch.go).
	batch batchSize
	// lastSync is when central's last message was handled (Unix
	// nanoseconds; 0: never since the start).
	lastSync atomic.Int64
	// link is the link as this node knows it while it leads; the
	// reporter records it in the store for every node (link.go).
	link *linkState
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Node == nil || cfg.Store == nil {
		return nil, errors.New("syncclient: a node and its store are required")
	}
	if cfg.Site == "" || cfg.CredentialFile == "" {
		return nil, errors.New("syncclient: the site id and credential file are required")
	}
	var urls []string
	for _, raw := range strings.Split(cfg.URL, ",") {
		u, err := SyncURL(strings.TrimSpace(raw))
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(u, "ws://") && !cfg.Insecure {
			return nil, fmt.Errorf("syncclient: central URL %q is not encrypted: the site's credential and BMC passwords would cross the network in the clear; "+
				"use wss:// or https://, or set insecure_central for a lab", strings.TrimSpace(raw))
		}
		urls = append(urls, u)
	}
	if cfg.HTTPClient == nil {
		tc := cfg.TLS
		if tc == nil {
			tc = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
		}
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tc}}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.LongBackoff <= 0 {
		cfg.LongBackoff = DefaultLongBackoff
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "sync", "site", cfg.Site)
	if cfg.Insecure && slices.ContainsFunc(urls, func(u string) bool { return strings.HasPrefix(u, "ws://") }) {
		log.Warn("sync with central over plain ws://: the site's credential and BMC passwords cross the network in the clear (insecure_central: for labs only)")
	}
	return &Client{cfg: cfg, urls: urls, log: log, link: newLinkState()}, nil
}

// SyncURL returns the websocket URL of central's sync endpoint: a ws://
// or wss:// URL as it is, an http(s):// URL turned into ws(s):// with
// syncproto.Path appended to its path.
func SyncURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("syncclient: central URL %q: want ws://, wss://, http:// or https://", raw)
	}
	if u.User != nil {
		return "", errors.New("syncclient: the central URL must not hold credentials")
	}
	switch u.Scheme {
	case "ws", "wss":
		return u.String(), nil
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("syncclient: central URL %q: want ws://, wss://, http:// or https://", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + syncproto.Path
	return u.String(), nil
}

// Connected reports whether the client has a welcomed connection now.
func (c *Client) Connected() bool { return c.connected.Load() }

// LastSync is when this node last handled a message from central (a
// revision, an acknowledgement, a heartbeat); zero if it has not since it
// started. Only the leader syncs, so a follower's is zero or old.
func (c *Client) LastSync() time.Time {
	if ns := c.lastSync.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Run syncs while the node leads, until ctx ends. It returns nil then:
// a failed connection is retried, never returned.
func (c *Client) Run(ctx context.Context) error {
	rctx, stopReport := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() { c.report(rctx); close(reported) }()
	defer func() { stopReport(); <-reported }()
	failures, epoch := 0, uint64(0)
	for {
		if !c.waitLeader(ctx) {
			return nil
		}
		if e := c.cfg.Node.LeaderEpoch(); e != epoch {
			// A new leadership: what this node knew of the link is old.
			epoch = e
			c.link.set(link{})
		}
		sctx, cancel := c.whileLeader(ctx)
		url := c.urls[c.turn%len(c.urls)]
		welcomed, err := c.session(sctx, url)
		cancel()
		c.sessionEnded(url, err)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errNotLeader) {
			c.turn++ // the next central node, if there are several
		}
		if welcomed {
			failures = 0
		}
		failures++
		delay := c.backoff(failures, err)
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// backoff logs why a session ended and returns how long to wait before
// the next: exponential in failures, with jitter, long after a refusal
// that needs an operator.
func (c *Client) backoff(failures int, err error) time.Duration {
	d := backoff.Exponential{Base: c.cfg.MinBackoff, Max: c.cfg.MaxBackoff}.Ceiling(failures)
	switch code := syncproto.CodeOf(err); {
	case errors.Is(err, errNotLeader):
		c.log.Info("sync stopped: this node no longer leads")
		return c.cfg.MinBackoff
	case errors.Is(err, errBadWelcome) || code == syncproto.CodeUnauthorized ||
		code == syncproto.CodeIncompatibleVersion || code == syncproto.CodeConflict:
		d = c.cfg.LongBackoff
		c.log.Error("central refused the site; an operator must act", "code", code, "err", err, "retry_in", d)
	case code == syncproto.CodeReplaced:
		c.log.Info("central ended this session: a newer one replaced it", "retry_in", d)
	default:
		c.log.Warn("sync connection ended", "err", err, "retry_in", d)
	}
	return backoff.Jitter(d)
}

var errNotLeader = errors.New("syncclient: this node no longer leads")

// waitLeader waits until the node is the ready leader, and reports
// whether it is (false: ctx ended).
func (c *Client) waitLeader(ctx context.Context) bool {
	for !c.cfg.Node.IsReadyLeader() {
		if !sleep(ctx, 100*time.Millisecond) {
			return false
		}
	}
	return true
}

// whileLeader returns a context that ends when the node stops being the
// ready leader of the term it leads now (errNotLeader is its cause).
func (c *Client) whileLeader(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	epoch := c.cfg.Node.LeaderEpoch()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !c.cfg.Node.IsReadyLeader() || c.cfg.Node.LeaderEpoch() != epoch {
				cancel(errNotLeader)
				return
			}
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// credential reads the site's credential from its file.
func (c *Client) credential() (syncproto.Credential, error) {
	raw, err := os.ReadFile(c.cfg.CredentialFile)
	if err != nil {
		return "", fmt.Errorf("syncclient: read the site credential: %w", err)
	}
	cred := strings.TrimSpace(string(raw))
	if cred == "" {
		return "", fmt.Errorf("syncclient: the site credential file %s is empty", c.cfg.CredentialFile)
	}
	return syncproto.Credential(cred), nil
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool { return backoff.Sleep(ctx, d) }

// selfReport is what the site says of itself (Config.Report) with its
// newest event's sequence, clipped to the protocol's limits; nil without
// a Report.
func (c *Client) selfReport(lastSeq uint64) *syncproto.Report {
	if c.cfg.Report == nil {
		return nil
	}
	r := c.cfg.Report()
	if r == nil {
		r = &syncproto.Report{}
	}
	r.LastSeq = lastSeq
	return r.Clip()
}

// lastSeq is the sequence of the site's newest event (0 if it cannot be
// read).
func (c *Client) lastSeq() uint64 {
	var st store.SyncState
	_ = c.cfg.Store.View(func(tx *store.Tx) error { st = tx.SyncState(); return nil })
	return st.LastSeq
}
