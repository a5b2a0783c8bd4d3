package ipam

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// big is 10.0.0.0/16 with one pool of 65,521 addresses, 50,000 of them
// leased (unexpired) to distinct MACs. macs[i] leases pool address i.
func big(b *testing.B, expires time.Time) (Subnet, []Lease, []string) {
	b.Helper()
	s := Subnet{
		Prefix:  netip.MustParsePrefix("10.0.0.0/16"),
		Gateway: ip("10.0.0.1"),
		Pools:   []Range{rng("10.0.0.10", "10.0.255.250")},
		Lease:   time.Hour,
	}
	macs := make([]string, 1<<17)
	for i := range macs {
		macs[i] = fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff)
	}
	leases := make([]Lease, 50_000)
	start := u32(ip("10.0.0.10"))
	for i := range leases {
		leases[i] = Lease{IP: addr(start + uint32(i)), MAC: macs[i], State: Active, Expires: expires}
	}
	return s, leases, macs
}

func bigAllocator(b *testing.B) (*Allocator, []string) {
	s, leases, macs := big(b, t0.Add(time.Hour))
	a, err := New(s, nil, leases, t0)
	if err != nil {
		b.Fatal(err)
	}
	return a, macs
}

// BenchmarkChoose measures one request on a /16 pool with 50k active
// leases, along each of Choose's paths.
func BenchmarkChoose(b *testing.B) {
	b.Run("new-client", func(b *testing.B) {
		a, macs := bigAllocator(b)
		for b.Loop() {
			if _, err := a.Choose(macs[100_000], netip.Addr{}, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sticky", func(b *testing.B) {
		a, macs := bigAllocator(b)
		for b.Loop() {
			if got, err := a.Choose(macs[12_345], netip.Addr{}, t0); err != nil || got != ip("10.0.48.67") {
				b.Fatal(got, err)
			}
		}
	})
	b.Run("requested", func(b *testing.B) {
		a, macs := bigAllocator(b)
		for b.Loop() {
			if got, err := a.Choose(macs[100_000], ip("10.0.250.1"), t0); err != nil || got != ip("10.0.250.1") {
				b.Fatal(got, err)
			}
		}
	})
	b.Run("least-recently-used", func(b *testing.B) {
		// Every pool address used: 50k active, the rest expired.
		s, leases, macs := big(b, t0.Add(time.Hour))
		start := u32(ip("10.0.0.10"))
		for i := len(leases); i < 65_521; i++ {
			leases = append(leases, Lease{IP: addr(start + uint32(i)), MAC: macs[i], State: Active,
				Expires: t0.Add(-time.Duration(i) * time.Second)})
		}
		a, err := New(s, nil, leases, t0)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := a.Choose(macs[100_000], netip.Addr{}, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOfferCommit measures what one client costs the allocator: an
// offer (choose and hold), a check and the commit, on the same /16 with
// the clock moving on by a millisecond a client.
func BenchmarkOfferCommit(b *testing.B) {
	a, macs := bigAllocator(b)
	now := t0
	i := 50_000
	for b.Loop() {
		now = now.Add(time.Millisecond)
		mac := macs[i%len(macs)]
		i++
		got, err := a.Offer(mac, netip.Addr{}, now, now.Add(10*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Check(mac, got, now); err != nil {
			b.Fatal(err)
		}
		if err := a.Observe(Lease{IP: got, MAC: mac, State: Active, Expires: now.Add(10 * time.Second)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNew measures building the allocator of the /16 from 50k leases,
// as the DHCP server does at start and when the subnet changes.
func BenchmarkNew(b *testing.B) {
	s, leases, _ := big(b, t0.Add(time.Hour))
	for b.Loop() {
		if _, err := New(s, nil, leases, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStats measures Stats, which visits every used address.
func BenchmarkStats(b *testing.B) {
	a, _ := bigAllocator(b)
	for b.Loop() {
		a.Stats(t0)
	}
}

// BenchmarkOfferAsThePoolFills measures a new client's offer on the /16
// with 0, 50,000 and 65,000 of its 65,521 addresses leased: choosing an
// address must not cost more as the pool fills (the never-used set is a
// bitset tree, the used ones a heap). Each offer is withdrawn (the
// address observed released again) so the fill stays put.
func BenchmarkOfferAsThePoolFills(b *testing.B) {
	for _, leased := range []int{0, 50_000, 65_000} {
		b.Run(fmt.Sprintf("leased=%d", leased), func(b *testing.B) {
			s, all, macs := big(b, t0.Add(time.Hour))
			leases := all[:min(leased, len(all))]
			start := u32(ip("10.0.0.10"))
			for i := len(all); i < leased; i++ {
				leases = append(leases, Lease{IP: addr(start + uint32(i)), MAC: macs[i], State: Active, Expires: t0.Add(time.Hour)})
			}
			a, err := New(s, nil, leases, t0)
			if err != nil {
				b.Fatal(err)
			}
			i := 100_000
			for b.Loop() {
				mac := macs[i%len(macs)]
				i++
				got, err := a.Offer(mac, netip.Addr{}, t0, t0.Add(10*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				if err := a.Observe(Lease{IP: got, MAC: mac, State: Released, Expires: t0}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
