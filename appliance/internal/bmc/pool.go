package bmc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/internal/backoff"
)

// Operations, as errors and logs name them.
const (
	opPowerOn    = "power on"
	opPowerOff   = "power off"
	opPowerCycle = "power cycle"
	opPowerState = "power status"
	opSetBoot    = "set boot device"
	opMedia      = "insert virtual media"
)

// Defaults of Config.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultAttempts    = 3
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 10 * time.Second
	DefaultConcurrency = 32
)

// DefaultOrder is the drivers tried for credentials that name none.
var DefaultOrder = []string{Redfish, IPMI}

// Config configures a Pool. The zero value is usable.
type Config struct {
	// Drivers make the Provider of each driver name. Default:
	// BMCLibDrivers(RootCAs).
	Drivers map[string]NewProvider
	// RootCAs is the site's BMC CA: a Redfish certificate it vouches for
	// (under the BMC's address) is trusted without being accepted.
	// Default: none; only the certificate a machine's credentials name
	// (Credentials.Fingerprint) is trusted.
	RootCAs *x509.CertPool
	// Order is the drivers tried, in turn, for credentials that name
	// none. Default: DefaultOrder (Redfish, then IPMI).
	Order []string
	// Timeout bounds one attempt with one driver. Default 30 s.
	Timeout time.Duration
	// Attempts is how many times an operation is tried. Default 3.
	Attempts int
	// Backoff is the wait before the second attempt; it doubles for each
	// attempt after, up to MaxBackoff. Each wait is jittered to between
	// half and all of it. Defaults 1 s and 10 s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Concurrency is how many attempts run at once, site-wide. Default 32.
	Concurrency int
	// Log receives retries (warnings) and results (debug). Default:
	// discard.
	Log *slog.Logger
}

// Pool runs operations on BMCs: one at a time per BMC, at most
// Config.Concurrency attempts at once, each retried and falling back
// across drivers as the package comment says. Its methods are safe for
// concurrent use.
type Pool struct {
	cfg Config
	log *slog.Logger
	sem chan struct{}

	mu    sync.Mutex
	locks map[string]*bmcLock
}

// bmcLock serializes the operations on one BMC; refs counts its holder
// and waiters, so that the last one out deletes it.
type bmcLock struct {
	ch   chan struct{}
	refs int
}

// New returns a pool with cfg, defaults filled in.
func New(cfg Config) *Pool {
	if cfg.Drivers == nil {
		cfg.Drivers = BMCLibDrivers(cfg.RootCAs)
	}
	if cfg.Order == nil {
		cfg.Order = DefaultOrder
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{cfg: cfg, log: log, sem: make(chan struct{}, cfg.Concurrency), locks: map[string]*bmcLock{}}
}

// PowerOn powers the machine on; nothing happens if it is on.
func (p *Pool) PowerOn(ctx context.Context, c Credentials) error {
	return p.do(ctx, c, opPowerOn, func(ctx context.Context, pr Provider) error {
		return pr.SetPower(ctx, ActionOn)
	})
}

// PowerOff powers the machine off at once (hard); nothing happens if it
// is off.
func (p *Pool) PowerOff(ctx context.Context, c Credentials) error {
	return p.do(ctx, c, opPowerOff, func(ctx context.Context, pr Provider) error {
		return pr.SetPower(ctx, ActionOff)
	})
}

// PowerCycle powers the machine off and on again. A machine that is off
// is powered on: either way it ends up booting.
func (p *Pool) PowerCycle(ctx context.Context, c Credentials) error {
	return p.do(ctx, c, opPowerCycle, func(ctx context.Context, pr Provider) error {
		st, err := pr.PowerState(ctx)
		if err != nil {
			return err
		}
		if st == Off {
			return pr.SetPower(ctx, ActionOn)
		}
		return pr.SetPower(ctx, ActionCycle)
	})
}

// PowerState reads the machine's power.
func (p *Pool) PowerState(ctx context.Context, c Credentials) (PowerState, error) {
	var st PowerState
	err := p.do(ctx, c, opPowerState, func(ctx context.Context, pr Provider) error {
		var err error
		st, err = pr.PowerState(ctx)
		return err
	})
	return st, err
}

// SetBootPXE sets the machine's next boot, or every boot, to the network.
// A BMC that refuses gives an error wrapping ErrBootDeviceRefused, which
// callers treat as a warning.
func (p *Pool) SetBootPXE(ctx context.Context, c Credentials, opts BootOptions) error {
	return p.do(ctx, c, opSetBoot, func(ctx context.Context, pr Provider) error {
		return pr.SetBootPXE(ctx, opts)
	})
}

// SetBootCD sets the machine's next boot, or every boot, to its (virtual)
// CD drive. A BMC that refuses gives an error wrapping
// ErrBootDeviceRefused; for a virtual-media boot that is a failure.
func (p *Pool) SetBootCD(ctx context.Context, c Credentials, opts BootOptions) error {
	return p.do(ctx, c, opSetBoot, func(ctx context.Context, pr Provider) error {
		return pr.SetBootCD(ctx, opts)
	})
}

// InsertMedia has the BMC fetch the image at url into its virtual CD
// drive ("" ejects it). The URL may be a secret (an ISO holding a
// credential, at an unguessable address): the providers' errors, and so
// the Pool's errors and logs, say "[media URL]" instead.
func (p *Pool) InsertMedia(ctx context.Context, c Credentials, url string) error {
	return p.do(ctx, c, opMedia, func(ctx context.Context, pr Provider) error {
		return pr.InsertMedia(ctx, url)
	})
}

// do runs op on c's BMC: under its lock, attempt after attempt.
func (p *Pool) do(ctx context.Context, c Credentials, op string, f func(context.Context, Provider) error) error {
	fail := func(kind error, attempts int, detail string) *Error {
		return &Error{Address: c.Address, Op: op, Kind: kind, Attempts: attempts, Detail: scrub(detail, c.Password)}
	}
	key, err := c.key()
	if err != nil {
		return fail(nil, 0, err.Error())
	}
	drivers, err := p.drivers(c.Driver)
	if err != nil {
		return fail(nil, 0, err.Error())
	}
	log := p.log.With("bmc", key, "op", op)
	unlock, err := p.lock(ctx, key)
	if err != nil {
		return fail(err, 0, "waiting for the BMC's previous operation")
	}
	defer unlock()
	for attempt := 1; ; attempt++ {
		if err := p.acquire(ctx); err != nil {
			return fail(err, attempt-1, "waiting for a site-wide slot")
		}
		driver, kind, detail, cert := p.attempt(ctx, c, drivers, f)
		p.release()
		if detail == "" {
			log.Debug("bmc: done", "driver", driver, "attempt", attempt)
			return nil
		}
		detail = scrub(detail, c.Password)
		if ctx.Err() != nil {
			return fail(ctx.Err(), attempt, detail)
		}
		if !retryable(kind) || attempt >= p.cfg.Attempts {
			e := fail(kind, attempt, detail)
			e.Certificate = cert
			return e
		}
		wait := backoff.Exponential{Base: p.cfg.Backoff, Max: p.cfg.MaxBackoff}.Wait(attempt)
		log.Warn("bmc: attempt failed; retrying", "attempt", attempt, "error", detail, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return fail(ctx.Err(), attempt, detail)
		}
	}
}

// attempt tries each driver in turn until one does f. It returns the
// driver that did, or the kind of failure, what each driver said and,
// for ErrCertificate, the refused certificate's fingerprint. A refused
// certificate ends the attempt: falling back to another driver would
// hand the password to whoever could make Redfish fail.
func (p *Pool) attempt(ctx context.Context, c Credentials, drivers []string, f func(context.Context, Provider) error) (driver string, kind error, detail, cert string) {
	var said []string
	var got []error
	for _, d := range drivers {
		err := p.try(ctx, c, d, f)
		if err == nil {
			return d, nil, "", ""
		}
		said = append(said, d+": "+oneLine(err.Error()))
		got = append(got, kindOf(err))
		var ke *kindError
		if errors.As(err, &ke) && ke.kind == ErrCertificate {
			return "", ErrCertificate, strings.Join(said, "; "), ke.cert
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "", worst(got), strings.Join(said, "; "), ""
}

// try does f with driver d, bounded by Config.Timeout.
func (p *Pool) try(ctx context.Context, c Credentials, d string, f func(context.Context, Provider) error) error {
	pr, err := p.cfg.Drivers[d](c)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	err = f(actx, pr)
	if err != nil && kindOf(err) == nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = failure(ErrTimeout, "no answer within %s: %s", p.cfg.Timeout, err)
	}
	return err
}

// worst is the most telling of kinds (see kinds).
func worst(ks []error) error {
	for _, k := range kinds {
		for _, got := range ks {
			if got == k {
				return k
			}
		}
	}
	return nil
}

// drivers returns the drivers to try for a credentials' driver name.
func (p *Pool) drivers(name string) ([]string, error) {
	if name == "" {
		var ds []string
		for _, d := range p.cfg.Order {
			if p.cfg.Drivers[d] != nil {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			return nil, errors.New("no driver configured")
		}
		return ds, nil
	}
	if p.cfg.Drivers[name] == nil {
		return nil, fmt.Errorf("unknown driver %q", name)
	}
	return []string{name}, nil
}

// lock takes key's lock, waiting until ctx is done.
func (p *Pool) lock(ctx context.Context, key string) (unlock func(), err error) {
	p.mu.Lock()
	l := p.locks[key]
	if l == nil {
		l = &bmcLock{ch: make(chan struct{}, 1)}
		p.locks[key] = l
	}
	l.refs++
	p.mu.Unlock()
	unref := func() {
		p.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(p.locks, key)
		}
		p.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; unref() }, nil
	case <-ctx.Done():
		unref()
		return nil, ctx.Err()
	}
}

// acquire takes a site-wide slot, waiting until ctx is done.
func (p *Pool) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pool) release() { <-p.sem }
