package bmc

import (
	"context"
	"sync"
	"time"
)

// fakeBMC is what a fake driver talks to: a machine's power, and what
// calls it got. Its methods are safe for concurrent use.
type fakeBMC struct {
	mu      sync.Mutex
	power   PowerState
	calls   []string                  // "driver action", in order
	at      []time.Time               // when each call came
	fail    func(driver string) error // if set, each call's error
	hold    time.Duration             // each call takes this long (or until ctx ends)
	active  int                       // calls running now
	maxSeen int                       // most calls running at once
	// shared counts calls running across fakes (the site-wide limit).
	shared *concurrency
}

// concurrency counts calls running at once, across BMCs.
type concurrency struct {
	mu          sync.Mutex
	active, max int
	total       int
}

func (c *concurrency) enter() {
	c.mu.Lock()
	c.active++
	c.total++
	c.max = max(c.max, c.active)
	c.mu.Unlock()
}

func (c *concurrency) leave() {
	c.mu.Lock()
	c.active--
	c.mu.Unlock()
}

func (c *concurrency) peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

// fakeProvider is one driver's view of a fakeBMC.
type fakeProvider struct {
	driver string
	bmc    *fakeBMC
}

// fakeDrivers returns drivers named names that reach bmcs by address.
func fakeDrivers(bmcs map[string]*fakeBMC, names ...string) map[string]NewProvider {
	ds := map[string]NewProvider{}
	for _, n := range names {
		ds[n] = func(c Credentials) (Provider, error) {
			key, err := c.key()
			if err != nil {
				return nil, err
			}
			b := bmcs[key]
			if b == nil {
				return nil, failure(ErrUnreachable, "no fake at %s", key)
			}
			return &fakeProvider{driver: n, bmc: b}, nil
		}
	}
	return ds
}

func (p *fakeProvider) call(ctx context.Context, what string) error {
	b := p.bmc
	b.mu.Lock()
	b.calls = append(b.calls, p.driver+" "+what)
	b.at = append(b.at, time.Now())
	b.active++
	b.maxSeen = max(b.maxSeen, b.active)
	hold, fail := b.hold, b.fail
	b.mu.Unlock()
	if b.shared != nil {
		b.shared.enter()
		defer b.shared.leave()
	}
	defer func() {
		b.mu.Lock()
		b.active--
		b.mu.Unlock()
	}()
	if hold > 0 {
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail(p.driver)
	}
	return nil
}

func (p *fakeProvider) PowerState(ctx context.Context) (PowerState, error) {
	if err := p.call(ctx, "status"); err != nil {
		return "", err
	}
	p.bmc.mu.Lock()
	defer p.bmc.mu.Unlock()
	if p.bmc.power == "" {
		return Off, nil
	}
	return p.bmc.power, nil
}

func (p *fakeProvider) SetPower(ctx context.Context, action string) error {
	if err := p.call(ctx, action); err != nil {
		return err
	}
	p.bmc.mu.Lock()
	defer p.bmc.mu.Unlock()
	switch action {
	case ActionOn, ActionCycle:
		p.bmc.power = On
	case ActionOff:
		p.bmc.power = Off
	}
	return nil
}

func (p *fakeProvider) SetBootPXE(ctx context.Context, opts BootOptions) error {
	return p.call(ctx, "pxe")
}

func (p *fakeProvider) SetBootCD(ctx context.Context, opts BootOptions) error {
	return p.call(ctx, "cd")
}

func (p *fakeProvider) InsertMedia(ctx context.Context, url string) error {
	return p.call(ctx, "media")
}

func (b *fakeBMC) callList() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *fakeBMC) times() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.at...)
}
