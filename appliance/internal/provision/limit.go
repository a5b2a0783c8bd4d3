package provision

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Defaults of the limit on machines created by discovery, per subnet.
const (
	// DefaultDiscoveryBurst lets a rack of a thousand unknown machines
	// powered on at once behind one relay be discovered without waiting.
	DefaultDiscoveryBurst = 1024
	// DefaultDiscoveryEvery is how often, once the burst is spent, one
	// more machine may be created in a subnet: 720 an hour.
	DefaultDiscoveryEvery = 5 * time.Second
)

// maxLimiters bounds the subnets limited separately; past it, idle ones
// are forgotten, and if none is, the rest share one limit.
const maxLimiters = 1024

// subnetLimiter limits the machines discovery creates, per subnet: a
// token bucket of burst machines, refilled one every every.
type subnetLimiter struct {
	every time.Duration
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newSubnetLimiter(burst int, every time.Duration) *subnetLimiter {
	if burst <= 0 {
		burst = DefaultDiscoveryBurst
	}
	if every <= 0 {
		every = DefaultDiscoveryEvery
	}
	return &subnetLimiter{every: every, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow takes one creation from subnet's bucket at now, if it has one.
func (l *subnetLimiter) allow(subnet string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[subnet]
	if !ok {
		if len(l.buckets) >= maxLimiters {
			l.forgetIdle(now)
		}
		if len(l.buckets) >= maxLimiters {
			subnet = "other"
			b = l.buckets[subnet]
		}
	}
	if b == nil {
		b = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.buckets[subnet] = b
	}
	return b.AllowN(now, 1)
}

// forgetIdle drops the buckets that are full again: forgetting them
// changes nothing.
func (l *subnetLimiter) forgetIdle(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// subnetOf names addr's subnet for the limit: the site's subnet that
// holds it, else its /24 (IPv4) or /64 (IPv6).
func subnetOf(tx *store.Tx, addr netip.Addr) (string, error) {
	subnets, err := store.List[store.Subnet](tx)
	if err != nil {
		return "", err
	}
	for _, s := range subnets {
		if p, err := netip.ParsePrefix(s.CIDR); err == nil && p.Contains(addr) {
			return "subnet " + s.Name, nil
		}
	}
	bits := 24
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p.String(), nil
}
