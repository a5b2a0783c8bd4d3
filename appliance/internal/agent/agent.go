package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/internal/backoff"
)

// Defaults of Config's timings.
const (
	DefaultCmdlinePath    = "/proc/cmdline"
	DefaultRequestTimeout = 30 * time.Second
	DefaultRetryMin       = 250 * time.Millisecond
	DefaultRetryMax       = 5 * time.Second
	DefaultAuthRetry      = 15 * time.Second
	DefaultCmdlineRetry   = 10 * time.Second
	DefaultPollMin        = time.Second
	DefaultPollMax        = 10 * time.Second
	DefaultIdlePoll       = 30 * time.Second
	DefaultDiscoverPoll   = 10 * time.Second
	DefaultStallTimeout   = 60 * time.Second
	DefaultTraceBatch     = time.Second
	DefaultFlushTimeout   = 10 * time.Second
)

// Config configures an Agent. Every zero field takes its default.
type Config struct {
	// CmdlinePath is the file holding the kernel command line
	// (DefaultCmdlinePath).
	CmdlinePath string
	// Root is the directory under which the agent finds proc and sys, for
	// discovery and file-system detection ("/").
	Root string
	// System reboots, powers off and kexecs the machine (the real kernel
	// calls).
	System System
	// HTTPClient sends API requests and downloads images. It must not
	// have a Timeout: requests get theirs from their contexts (a client
	// with dial and header timeouts).
	HTTPClient *http.Client
	// MountDir is where file systems are mounted for file.write and kexec
	// (os.TempDir()).
	MountDir string

	// RequestTimeout bounds one API request (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between tries of a request
	// that failed transiently (DefaultRetryMin, DefaultRetryMax).
	RetryMin, RetryMax time.Duration
	// AuthRetry is the wait after the appliance refused the credential
	// (DefaultAuthRetry).
	AuthRetry time.Duration
	// CmdlineRetry is the wait before reading the command line again when
	// it lacks the URL or the token (DefaultCmdlineRetry).
	CmdlineRetry time.Duration
	// PollMin and PollMax bound the wait between fetches of a running
	// workflow; the appliance's poll_seconds is clamped to them
	// (DefaultPollMin, DefaultPollMax).
	PollMin, PollMax time.Duration
	// IdlePoll is the wait between fetches once the workflow is done
	// (DefaultIdlePoll).
	IdlePoll time.Duration
	// DiscoverPoll is the wait between fetches while a discovered machine
	// has no workflow (DefaultDiscoverPoll).
	DiscoverPoll time.Duration
	// ProgressInterval is the least time between two progress reports of
	// an attempt (agentproto.ProgressInterval).
	ProgressInterval time.Duration
	// StallTimeout is how long a download may go without a byte before it
	// is retried (DefaultStallTimeout).
	StallTimeout time.Duration
	// TraceBatch is how long the agent's finished spans wait to be sent
	// to the appliance together (DefaultTraceBatch).
	TraceBatch time.Duration
	// Rediscover finds the appliance again once RediscoverAfter requests
	// in a row went unanswered (the node outpost.url names died; a site
	// of several nodes carries on without it): it returns the address of
	// the node that serves the site now, which replaces outpost.url's
	// host, its scheme and port kept (every node of a site serves boot
	// HTTP on one port). Nil: DHCPRediscover on the interface of
	// outpost.mac, when the command line names one.
	Rediscover func(ctx context.Context) (string, error)
	// RediscoverAfter is how many requests in a row may go unanswered
	// before Rediscover is asked (DefaultRediscoverAfter).
	RediscoverAfter int
	// FlushTimeout bounds the wait for the agent's spans to reach the
	// appliance before the machine goes down, and at exit
	// (DefaultFlushTimeout): past it, the machine goes down anyway.
	FlushTimeout time.Duration
}

func (c *Config) setDefaults() {
	setDefault(&c.CmdlinePath, DefaultCmdlinePath)
	setDefault(&c.Root, "/")
	setDefault(&c.MountDir, os.TempDir())
	setDefault(&c.RequestTimeout, DefaultRequestTimeout)
	setDefault(&c.RetryMin, DefaultRetryMin)
	setDefault(&c.RetryMax, DefaultRetryMax)
	setDefault(&c.AuthRetry, DefaultAuthRetry)
	setDefault(&c.CmdlineRetry, DefaultCmdlineRetry)
	setDefault(&c.PollMin, DefaultPollMin)
	setDefault(&c.PollMax, DefaultPollMax)
	setDefault(&c.IdlePoll, DefaultIdlePoll)
	setDefault(&c.DiscoverPoll, DefaultDiscoverPoll)
	setDefault(&c.ProgressInterval, agentproto.ProgressInterval)
	setDefault(&c.StallTimeout, DefaultStallTimeout)
	setDefault(&c.TraceBatch, DefaultTraceBatch)
	setDefault(&c.FlushTimeout, DefaultFlushTimeout)
	setDefault(&c.RediscoverAfter, DefaultRediscoverAfter)
	if c.System == nil {
		c.System = LinuxSystem{}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 nil, // the appliance is on the local network
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
		}}
	}
}

// retry is the backoff between tries of a request that failed
// transiently.
func (c *Config) retry() backoff.Exponential {
	return backoff.Exponential{Base: c.RetryMin, Max: c.RetryMax}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Agent is the provisioning agent. Make one with New and Run it.
type Agent struct {
	cfg Config
	log *slog.Logger
}

// New returns an agent with cfg's zero fields set to their defaults.
func New(cfg Config, log *slog.Logger) *Agent {
	cfg.setDefaults()
	return &Agent{cfg: cfg, log: log}
}

// Run runs the agent until ctx ends: it waits for usable parameters on
// the command line, reports the hardware in discovery mode, then fetches
// and runs the machine's workflow, and idles once it is done. It returns
// nil when ctx is canceled; it has no other way to end. Its work is
// traced under the workflow's traceparent (the command line's, or the
// workflow's own): an agent.run span over the workflow's run and one per
// action attempt, sent to the appliance before the machine goes down and
// before Run returns.
func (a *Agent) Run(ctx context.Context) error {
	p, ok := a.params(ctx)
	if !ok {
		return nil
	}
	base, _ := url.Parse(p.URL) // checked by params
	log := a.log
	if p.Machine != "" {
		log = log.With("machine", p.Machine)
	}
	find := a.cfg.Rediscover
	if find == nil && p.MAC != "" {
		find = DHCPRediscover(p.MAC)
	}
	app := &appliance{base: base, find: find, after: a.cfg.RediscoverAfter, log: log}
	c := &client{cfg: &a.cfg, app: app, token: p.Token, log: log}
	node := p.Machine
	if node == "" {
		node = p.MAC
	}
	tr := newTracer(&a.cfg, c, node, log)
	defer tr.shutdown()
	if p.Discover() {
		log.Info("agent starting in discovery mode", "url", p.URL, "mac", p.MAC)
		a.discover(ctx, c, p)
	} else {
		log.Info("agent starting", "url", p.URL, "mac", p.MAC)
	}
	r := newRunner(a, c, tr, p, log)
	r.loop(ctx)
	return nil
}

// params reads the command line until it has a valid URL and a token.
func (a *Agent) params(ctx context.Context) (Params, bool) {
	for {
		b, err := os.ReadFile(a.cfg.CmdlinePath)
		var p Params
		if err == nil {
			p = ParseCmdline(string(b))
			err = p.check()
		}
		if err == nil {
			return p, true
		}
		a.log.Error("cannot start: the kernel command line lacks what the agent needs; reading it again later",
			"cmdline", a.cfg.CmdlinePath, "err", err, "retry_in", a.cfg.CmdlineRetry)
		if !backoff.Sleep(ctx, a.cfg.CmdlineRetry) {
			return Params{}, false
		}
	}
}

// check reports what makes p unusable.
func (p Params) check() error {
	var missing []string
	if p.URL == "" {
		missing = append(missing, agentproto.ParamURL)
	}
	if p.Token == "" {
		missing = append(missing, agentproto.ParamToken)
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, " and "))
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q is not an http(s) URL", agentproto.ParamURL, p.URL)
	}
	return nil
}
