package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

const (
	macA = "02:00:00:00:00:0a"
	macB = "02:00:00:00:00:0b"
	macC = "02:00:00:00:00:0c"
	macD = "02:00:00:00:00:0d"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func rng(start, end string) Range { return Range{ip(start), ip(end)} }

// lab is 198.18.0.0/24: gateway .1, fixed addresses in .2-.99, a pool of
// .100-.199.
func lab() Subnet {
	return Subnet{
		Prefix:   netip.MustParsePrefix("198.18.0.0/24"),
		Gateway:  ip("198.18.0.1"),
		Pools:    []Range{rng("198.18.0.100", "198.18.0.199")},
		Reserved: []Range{rng("198.18.0.2", "198.18.0.99")},
		Lease:    time.Hour,
	}
}

// withPools returns lab with other pools.
func withPools(rs ...Range) Subnet {
	s := lab()
	s.Pools = rs
	return s
}

func newLease(addr, mac string, state LeaseState, expires time.Time) Lease {
	return Lease{IP: ip(addr), MAC: mac, State: state, Expires: expires}
}

type holdAt struct {
	mac, ip string
	until   time.Time
}

// setup builds an allocator, then applies holds and commits.
func setup(t *testing.T, s Subnet, res map[string]string, leases, commits []Lease, holds []holdAt) *Allocator {
	t.Helper()
	r := map[string]netip.Addr{}
	for mac, a := range res {
		r[mac] = ip(a)
	}
	a, err := New(s, r, leases, t0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, h := range holds {
		if err := a.Hold(h.mac, ip(h.ip), t0.Add(-time.Minute), h.until); err != nil {
			t.Fatalf("Hold(%s, %s): %v", h.mac, h.ip, err)
		}
	}
	for _, l := range commits {
		if err := a.Observe(l); err != nil {
			t.Fatalf("Observe(%+v): %v", l, err)
		}
	}
	verify(t, a)
	return a
}

func TestNewRefuses(t *testing.T) {
	tests := map[string]struct {
		subnet func(*Subnet)
		res    map[string]netip.Addr
		leases []Lease
		want   error
		detail string
	}{
		"IPv6 prefix":          {subnet: func(s *Subnet) { s.Prefix = netip.MustParsePrefix("2001:db8::/64") }, want: ErrInvalid, detail: "not an IPv4 prefix"},
		"no prefix":            {subnet: func(s *Subnet) { s.Prefix = netip.Prefix{} }, want: ErrInvalid, detail: "not an IPv4 prefix"},
		"/31":                  {subnet: func(s *Subnet) { s.Prefix = netip.MustParsePrefix("198.18.0.0/31") }, want: ErrInvalid, detail: "no room for hosts"},
		"no lease time":        {subnet: func(s *Subnet) { s.Lease = 0 }, want: ErrInvalid, detail: "lease time 0s"},
		"gateway outside":      {subnet: func(s *Subnet) { s.Gateway = ip("198.19.0.1") }, want: ErrInvalid, detail: "gateway 198.19.0.1 is outside 198.18.0.0/24"},
		"gateway is broadcast": {subnet: func(s *Subnet) { s.Gateway = ip("198.18.0.255") }, want: ErrInvalid, detail: "broadcast"},
		"pool outside": {subnet: func(s *Subnet) { s.Pools = append(s.Pools, rng("198.18.0.200", "198.18.1.10")) },
			want: ErrInvalid, detail: "pools[1] 198.18.0.200-198.18.1.10: 198.18.1.10 is outside"},
		"pool backwards": {subnet: func(s *Subnet) { s.Pools = []Range{rng("198.18.0.20", "198.18.0.10")} },
			want: ErrInvalid, detail: "pools[0] 198.18.0.20-198.18.0.10: end is before start"},
		"pool IPv6": {subnet: func(s *Subnet) { s.Pools = []Range{{ip("::1"), ip("::2")}} }, want: ErrInvalid, detail: "::1 is outside"},
		"reserved outside": {subnet: func(s *Subnet) { s.Reserved = []Range{rng("10.0.0.1", "10.0.0.2")} },
			want: ErrInvalid, detail: "reserved[0]"},
		"pools too wide": {subnet: func(s *Subnet) {
			s.Prefix = netip.MustParsePrefix("10.0.0.0/7")
			s.Gateway = ip("10.0.0.1")
			s.Pools = []Range{rng("10.0.0.10", "11.0.0.10")}
			s.Reserved = nil
		}, want: ErrInvalid, detail: "pools span 16777217 addresses"},
		"reservation outside": {res: map[string]netip.Addr{macA: ip("198.18.1.5")}, want: ErrInvalid,
			detail: "reservation of 02:00:00:00:00:0a: ipam: invalid: address 198.18.1.5 is outside"},
		"reservation on the gateway":   {res: map[string]netip.Addr{macA: ip("198.18.0.1")}, want: ErrInvalid, detail: "is the gateway"},
		"reservation on the network":   {res: map[string]netip.Addr{macA: ip("198.18.0.0")}, want: ErrInvalid, detail: "network address"},
		"reservation with a bad MAC":   {res: map[string]netip.Addr{"02:00:00:00:00:0A": ip("198.18.0.5")}, want: ErrInvalid, detail: "canonical"},
		"two MACs, one address":        {res: map[string]netip.Addr{macA: ip("198.18.0.5"), macB: ip("198.18.0.5")}, want: ErrReserved, detail: "198.18.0.5 is already reserved for 02:00:00:00:00:0a"},
		"lease outside":                {leases: []Lease{newLease("198.18.1.5", macA, Active, t0)}, want: ErrNotInPool, detail: "leases[0]: ipam: address not in pool: lease for 198.18.1.5 is outside"},
		"lease with a bad MAC":         {leases: []Lease{newLease("198.18.0.105", "02-00-00-00-00-0a", Active, t0)}, want: ErrInvalid, detail: "leases[0]"},
		"lease without a state":        {leases: []Lease{newLease("198.18.0.105", macA, 0, t0)}, want: ErrInvalid, detail: "unknown state LeaseState(0)"},
		"two leases for one address":   {leases: []Lease{newLease("198.18.0.105", macA, Active, t0), newLease("198.18.0.105", macB, Active, t0)}, want: ErrInvalid, detail: "leases[0] and leases[1] are both for 198.18.0.105"},
		"IPv4-mapped lease is outside": {leases: []Lease{newLease("::ffff:198.18.0.105", macA, Active, t0)}, want: ErrNotInPool},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := lab()
			if tc.subnet != nil {
				tc.subnet(&s)
			}
			_, err := New(s, tc.res, tc.leases, t0)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.detail) {
				t.Fatalf("New: %v, want %v containing %q", err, tc.want, tc.detail)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	s := lab()
	s.Prefix = netip.MustParsePrefix("198.18.0.77/24") // host bits ignored
	s.Pools = []Range{rng("198.18.0.0", "198.18.0.150"), rng("198.18.0.140", "198.18.0.255")}
	s.Gateway = netip.Addr{}
	a, err := New(s, map[string]netip.Addr{macA: ip("198.18.0.250")}, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, a)
	// 256 addresses less network, broadcast, the 98 reserved and A's.
	want := Stats{Size: 256 - 2 - 98 - 1, Free: 256 - 2 - 98 - 1, Reservations: 1}
	if diff := cmp.Diff(want, a.Stats(t0)); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestChoose(t *testing.T) {
	hour := t0.Add(time.Hour)
	tests := map[string]struct {
		subnet    Subnet
		res       map[string]string
		leases    []Lease // given to New
		commits   []Lease // observed after New
		holds     []holdAt
		forget    []string
		mac       string
		requested string
		want      string
		wantErr   error
	}{
		"first pool address": {want: "198.18.0.100"},
		"reservation wins over lease and request": {res: map[string]string{macA: "198.18.0.50"},
			leases: []Lease{newLease("198.18.0.120", macA, Active, hour)}, requested: "198.18.0.130", want: "198.18.0.50"},
		"reservation outside every range": {res: map[string]string{macA: "198.18.0.250"}, want: "198.18.0.250"},
		"reservation inside the pool":     {res: map[string]string{macA: "198.18.0.150"}, want: "198.18.0.150"},
		"reservation leased to another MAC": {res: map[string]string{macA: "198.18.0.50"},
			leases: []Lease{newLease("198.18.0.50", macB, Active, hour)}, wantErr: ErrTaken},
		"reservation quarantined": {res: map[string]string{macA: "198.18.0.50"},
			leases: []Lease{newLease("198.18.0.50", macA, Declined, hour)}, wantErr: ErrQuarantined},
		"reservation without pools": {subnet: withPools(), res: map[string]string{macA: "198.18.0.50"}, want: "198.18.0.50"},
		"no reservation, no pools":  {subnet: withPools(), wantErr: ErrNoPool},
		"sticky: unexpired lease": {leases: []Lease{newLease("198.18.0.150", macA, Active, hour)},
			requested: "198.18.0.130", want: "198.18.0.150"},
		"sticky: expired lease": {leases: []Lease{newLease("198.18.0.150", macA, Active, t0.Add(-time.Hour))},
			requested: "198.18.0.130", want: "198.18.0.150"},
		"sticky: released lease":  {leases: []Lease{newLease("198.18.0.150", macA, Released, t0.Add(-time.Hour))}, want: "198.18.0.150"},
		"sticky: committed offer": {commits: []Lease{newLease("198.18.0.150", macA, Offered, t0.Add(time.Minute))}, want: "198.18.0.150"},
		"sticky: the lease expiring last": {leases: []Lease{
			newLease("198.18.0.150", macA, Active, t0.Add(-time.Hour)),
			newLease("198.18.0.160", macA, Active, t0.Add(-time.Minute)),
		}, want: "198.18.0.160"},
		"sticky: reassigned to another MAC": {
			leases:  []Lease{newLease("198.18.0.150", macA, Active, t0.Add(-time.Hour))},
			commits: []Lease{newLease("198.18.0.150", macB, Active, hour)}, want: "198.18.0.100"},
		"sticky: not a declined address": {leases: []Lease{newLease("198.18.0.150", macA, Declined, t0.Add(-time.Minute))}, want: "198.18.0.100"},
		"sticky: not once outside the pool": {subnet: withPools(rng("198.18.0.100", "198.18.0.149")),
			leases: []Lease{newLease("198.18.0.150", macA, Active, hour)}, want: "198.18.0.100"},
		"sticky: not another MAC's reservation": {res: map[string]string{macB: "198.18.0.150"},
			leases: []Lease{newLease("198.18.0.150", macA, Active, t0.Add(-time.Minute))}, want: "198.18.0.100"},
		"sticky: not held by another MAC": {leases: []Lease{newLease("198.18.0.150", macA, Active, t0.Add(-time.Hour))},
			holds: []holdAt{{macB, "198.18.0.150", t0.Add(time.Minute)}}, want: "198.18.0.100"},
		"own pending offer, taken since": {holds: []holdAt{{macA, "198.18.0.170", t0.Add(time.Minute)}},
			commits: []Lease{newLease("198.18.0.170", macB, Active, hour)}, want: "198.18.0.100"},
		"a commit ends other offers of its address": {holds: []holdAt{{macB, "198.18.0.130", t0.Add(time.Minute)}},
			commits: []Lease{newLease("198.18.0.130", macC, Active, t0)}, requested: "198.18.0.130", want: "198.18.0.130"},
		"own pending offer":            {holds: []holdAt{{macA, "198.18.0.170", t0.Add(time.Minute)}}, requested: "198.18.0.130", want: "198.18.0.170"},
		"requested free address":       {requested: "198.18.0.130", want: "198.18.0.130"},
		"requested, expired elsewhere": {leases: []Lease{newLease("198.18.0.130", macB, Active, t0)}, requested: "198.18.0.130", want: "198.18.0.130"},
		"requested, leased to another": {leases: []Lease{newLease("198.18.0.130", macB, Active, hour)}, requested: "198.18.0.130", want: "198.18.0.100"},
		"requested, offered to another": {commits: []Lease{newLease("198.18.0.130", macB, Offered, t0.Add(time.Second))},
			requested: "198.18.0.130", want: "198.18.0.100"},
		"requested, held for another": {holds: []holdAt{{macB, "198.18.0.130", t0.Add(time.Second)}}, requested: "198.18.0.130", want: "198.18.0.100"},
		"requested, quarantined":      {leases: []Lease{newLease("198.18.0.130", macA, Declined, hour)}, requested: "198.18.0.130", want: "198.18.0.100"},
		"requested, reserved range":   {requested: "198.18.0.50", want: "198.18.0.100"},
		"requested, outside pools":    {requested: "198.18.0.230", want: "198.18.0.100"},
		"requested, the gateway":      {requested: "198.18.0.1", want: "198.18.0.100"},
		"requested, the broadcast": {subnet: withPools(rng("198.18.0.100", "198.18.0.255")),
			requested: "198.18.0.255", want: "198.18.0.100"},
		"requested, another subnet":              {requested: "10.0.0.130", want: "198.18.0.100"},
		"requested, IPv6":                        {requested: "2001:db8::1", want: "198.18.0.100"},
		"requested, another MAC's reservation":   {res: map[string]string{macB: "198.18.0.130"}, requested: "198.18.0.130", want: "198.18.0.100"},
		"network and gateway in the pool":        {subnet: withPools(rng("198.18.0.0", "198.18.0.1")), wantErr: ErrExhausted},
		"network and gateway skipped":            {subnet: withPools(rng("198.18.0.0", "198.18.0.255")), want: "198.18.0.100"},
		"broadcast never chosen":                 {subnet: withPools(rng("198.18.0.254", "198.18.0.255")), leases: []Lease{newLease("198.18.0.254", macB, Active, hour)}, wantErr: ErrExhausted},
		"reserved range in the pool skipped":     {subnet: withPools(rng("198.18.0.90", "198.18.0.120")), want: "198.18.0.100"},
		"another MAC's reservation skipped":      {res: map[string]string{macB: "198.18.0.100"}, want: "198.18.0.101"},
		"never-used before released and expired": {leases: []Lease{newLease("198.18.0.100", macB, Released, t0.Add(-time.Hour)), newLease("198.18.0.101", macC, Active, t0.Add(-2*time.Hour))}, want: "198.18.0.102"},
		"least recently used": {subnet: withPools(rng("198.18.0.100", "198.18.0.102")), leases: []Lease{
			newLease("198.18.0.100", macB, Active, t0.Add(-time.Hour)),
			newLease("198.18.0.101", macC, Active, t0.Add(-3*time.Hour)),
			newLease("198.18.0.102", macD, Released, t0.Add(-2*time.Hour)),
		}, want: "198.18.0.101"},
		"a just-released address last": {subnet: withPools(rng("198.18.0.100", "198.18.0.101")), leases: []Lease{
			newLease("198.18.0.100", macB, Released, t0),
			newLease("198.18.0.101", macC, Active, t0.Add(-time.Second)),
		}, want: "198.18.0.101"},
		"released with a later expiry, free at once": {subnet: withPools(rng("198.18.0.100", "198.18.0.100")),
			commits: []Lease{newLease("198.18.0.100", macB, Released, hour)}, want: "198.18.0.100"},
		"expiry frees": {subnet: withPools(rng("198.18.0.100", "198.18.0.100")),
			leases: []Lease{newLease("198.18.0.100", macB, Active, t0)}, want: "198.18.0.100"},
		"quarantine blocks everyone": {subnet: withPools(rng("198.18.0.100", "198.18.0.100")),
			leases: []Lease{newLease("198.18.0.100", macA, Declined, t0.Add(time.Second))}, requested: "198.18.0.100", wantErr: ErrExhausted},
		"quarantine ends": {subnet: withPools(rng("198.18.0.100", "198.18.0.100")),
			leases: []Lease{newLease("198.18.0.100", macB, Declined, t0)}, want: "198.18.0.100"},
		"held offer blocks others": {subnet: withPools(rng("198.18.0.100", "198.18.0.101")),
			holds: []holdAt{{macB, "198.18.0.100", t0.Add(time.Second)}}, want: "198.18.0.101"},
		"lapsed hold frees": {subnet: withPools(rng("198.18.0.100", "198.18.0.100")),
			holds: []holdAt{{macB, "198.18.0.100", t0}}, want: "198.18.0.100"},
		"exhausted": {subnet: withPools(rng("198.18.0.100", "198.18.0.101")), leases: []Lease{
			newLease("198.18.0.100", macB, Active, hour),
			newLease("198.18.0.101", macC, Offered, t0.Add(time.Second)),
		}, wantErr: ErrExhausted},
		"release frees at once": {subnet: withPools(rng("198.18.0.100", "198.18.0.100")),
			leases:  []Lease{newLease("198.18.0.100", macB, Active, hour)},
			commits: []Lease{newLease("198.18.0.100", macB, Released, t0.Add(-time.Hour))}, want: "198.18.0.100"},
		"deleted lease is not sticky": {leases: []Lease{newLease("198.18.0.150", macA, Active, hour)},
			forget: []string{"198.18.0.150"}, want: "198.18.0.100"},
		"deleted lease frees": {subnet: withPools(rng("198.18.0.100", "198.18.0.100")),
			leases: []Lease{newLease("198.18.0.100", macB, Active, hour)}, forget: []string{"198.18.0.100"}, want: "198.18.0.100"},
		"one lease per MAC": {subnet: withPools(rng("198.18.0.100", "198.18.0.101")),
			leases:  []Lease{newLease("198.18.0.100", macB, Active, hour)},
			commits: []Lease{newLease("198.18.0.101", macB, Active, hour)}, want: "198.18.0.100"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := tc.subnet
			if s.Prefix == (netip.Prefix{}) {
				s = lab()
			}
			a := setup(t, s, tc.res, tc.leases, tc.commits, tc.holds)
			for _, f := range tc.forget {
				a.Forget(ip(f))
			}
			mac := tc.mac
			if mac == "" {
				mac = macA
			}
			var req netip.Addr
			if tc.requested != "" {
				req = ip(tc.requested)
			}
			got, err := a.Choose(mac, req, t0)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Choose = %v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != ip(tc.want) {
				t.Fatalf("Choose = %v, %v; want %s", got, err, tc.want)
			}
			// Offer agrees and holds what it chose.
			if got, err := a.Offer(mac, req, t0, t0.Add(10*time.Second)); err != nil || got != ip(tc.want) {
				t.Fatalf("Offer = %v, %v; want %s", got, err, tc.want)
			}
			if err := a.Check(macD, got, t0); !errors.Is(err, ErrTaken) && !errors.Is(err, ErrReserved) {
				t.Errorf("after Offer, Check(other MAC) = %v, want ErrTaken or ErrReserved", err)
			}
			verify(t, a)
		})
	}
}

func TestCheck(t *testing.T) {
	hour := t0.Add(time.Hour)
	res := map[string]string{macC: "198.18.0.50", macD: "198.18.0.150"}
	leases := []Lease{
		newLease("198.18.0.110", macB, Active, hour),
		newLease("198.18.0.111", macA, Active, hour),
		newLease("198.18.0.112", macB, Active, t0),
		newLease("198.18.0.113", macA, Declined, hour),
		newLease("198.18.0.114", macB, Declined, t0),
		newLease("198.18.0.115", macB, Released, hour),
	}
	holds := []holdAt{{macB, "198.18.0.120", hour}}
	a := setup(t, lab(), res, leases, nil, holds)
	tests := map[string]struct {
		mac, ip string
		want    error
		detail  string
	}{
		"free pool address":           {macA, "198.18.0.130", nil, ""},
		"own lease":                   {macA, "198.18.0.111", nil, ""},
		"another's expired lease":     {macA, "198.18.0.112", nil, ""},
		"another's released lease":    {macA, "198.18.0.115", nil, ""},
		"quarantine over":             {macA, "198.18.0.114", nil, ""},
		"own reservation":             {macC, "198.18.0.50", nil, ""},
		"own reservation in the pool": {macD, "198.18.0.150", nil, ""},
		"leased to another":           {macA, "198.18.0.110", ErrTaken, "198.18.0.110 is leased to 02:00:00:00:00:0b (active) until 2026-03-01T11:00:00Z"},
		"held for another":            {macA, "198.18.0.120", ErrTaken, "offered to 02:00:00:00:00:0b"},
		"quarantined, own decline":    {macA, "198.18.0.113", ErrQuarantined, "declined by 02:00:00:00:00:0a; quarantined until"},
		"another's reservation":       {macA, "198.18.0.150", ErrReserved, "198.18.0.150 is reserved for 02:00:00:00:00:0d"},
		"reserved MAC, other address": {macC, "198.18.0.130", ErrReserved, "02:00:00:00:00:0c has reserved address 198.18.0.50, not 198.18.0.130"},
		"reserved range":              {macA, "198.18.0.60", ErrReserved, "in a reserved range"},
		"gateway":                     {macA, "198.18.0.1", ErrReserved, "gateway"},
		"network":                     {macA, "198.18.0.0", ErrReserved, "network address"},
		"broadcast":                   {macA, "198.18.0.255", ErrReserved, "broadcast address"},
		"outside the pools":           {macA, "198.18.0.230", ErrNotInPool, "not in a pool"},
		"outside the subnet":          {macA, "198.18.1.130", ErrNotInPool, "outside 198.18.0.0/24"},
		"bad MAC":                     {"02:00:00:00:00:0A", "198.18.0.130", ErrInvalid, "canonical"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := a.Check(tc.mac, ip(tc.ip), t0)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("Check = %v, want %v containing %q", err, tc.want, tc.detail)
			}
		})
	}
}

func TestHold(t *testing.T) {
	a := setup(t, withPools(rng("198.18.0.100", "198.18.0.102")), nil, nil, nil, nil)
	soon := t0.Add(10 * time.Second)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Hold(macA, ip("198.18.0.101"), t0, soon))
	if err := a.Hold(macB, ip("198.18.0.101"), t0, soon); !errors.Is(err, ErrTaken) {
		t.Fatalf("Hold of a held address = %v, want ErrTaken", err)
	}
	must(a.Hold(macA, ip("198.18.0.101"), t0, soon.Add(time.Second))) // own: extends
	// A MAC holds one address: holding another lets the first go.
	must(a.Hold(macA, ip("198.18.0.102"), t0, soon))
	later := t0.Add(time.Minute)
	must(a.Hold(macB, ip("198.18.0.101"), t0, later))
	// A's hold of .102 lapses at soon.
	must(a.Hold(macC, ip("198.18.0.102"), soon, later))
	if got, want := a.Stats(soon), (Stats{Size: 3, Free: 1, Held: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	// Committing a lease ends the MAC's hold, wherever it is.
	must(a.Observe(newLease("198.18.0.100", macB, Active, t0.Add(time.Hour))))
	if got, want := a.Stats(soon), (Stats{Size: 3, Leased: 1, Held: 1, Free: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	must(a.Check(macD, ip("198.18.0.101"), soon))
	if err := a.Hold(macA, ip("198.18.0.0"), t0, soon); !errors.Is(err, ErrReserved) {
		t.Errorf("Hold(network) = %v, want ErrReserved", err)
	}
	if err := a.Hold(macA, ip("10.0.0.1"), t0, soon); !errors.Is(err, ErrNotInPool) {
		t.Errorf("Hold(outside) = %v, want ErrNotInPool", err)
	}
	verify(t, a)
}

func TestObserveAndForget(t *testing.T) {
	a := setup(t, withPools(rng("198.18.0.100", "198.18.0.101")), nil, nil, nil, nil)
	hour := t0.Add(time.Hour)
	if err := a.Observe(newLease("198.18.0.100", macA, Active, hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.Observe(newLease("198.18.0.101", macB, Active, hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Choose(macC, netip.Addr{}, t0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Choose = %v, want ErrExhausted", err)
	}
	a.Forget(ip("198.18.0.100"))
	a.Forget(ip("198.18.0.100")) // twice is harmless
	a.Forget(ip("10.1.1.1"))     // not ours
	if got, err := a.Choose(macC, netip.Addr{}, t0); err != nil || got != ip("198.18.0.100") {
		t.Fatalf("after Forget, Choose = %v, %v", got, err)
	}
	for name, l := range map[string]Lease{
		"outside": newLease("198.18.1.1", macA, Active, hour),
		"bad MAC": newLease("198.18.0.100", "nope", Active, hour),
		"state":   newLease("198.18.0.100", macA, 9, hour),
	} {
		if err := a.Observe(l); err == nil {
			t.Errorf("Observe(%s) succeeded", name)
		}
	}
	verify(t, a)
}

// TestLease: the allocator answers for an address with the lease last
// committed there, as the store holds it: built from the store, then as
// observed; none once the MAC's lease moved, nor after Forget; a hold
// (an offer not committed) is no lease.
func TestLease(t *testing.T) {
	hour := t0.Add(time.Hour)
	a := setup(t, lab(), nil, []Lease{newLease("198.18.0.100", macA, Active, hour)}, nil,
		[]holdAt{{macC, "198.18.0.102", t0.Add(time.Minute)}})
	if l, ok := a.Lease(ip("198.18.0.100")); !ok || l != newLease("198.18.0.100", macA, Active, hour) {
		t.Errorf("Lease(.100) built from the store = %+v, %v", l, ok)
	}
	if l, ok := a.Lease(ip("198.18.0.102")); ok {
		t.Errorf("Lease(.102), only held, = %+v", l)
	}
	if err := a.Observe(newLease("198.18.0.101", macA, Offered, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if l, ok := a.Lease(ip("198.18.0.100")); ok {
		t.Errorf("Lease(.100) after its MAC's lease moved = %+v", l)
	}
	if l, ok := a.Lease(ip("198.18.0.101")); !ok || l.MAC != macA || l.State != Offered || !l.Holds(t0) || l.Holds(hour) {
		t.Errorf("Lease(.101) = %+v, %v; want macA's offer, holding until a minute past t0", l, ok)
	}
	a.Forget(ip("198.18.0.101"))
	for _, addr := range []string{"198.18.0.101", "10.1.1.1"} {
		if l, ok := a.Lease(ip(addr)); ok {
			t.Errorf("Lease(%s) = %+v, want none", addr, l)
		}
	}
	if released := newLease("198.18.0.100", macB, Released, hour); released.Holds(t0) {
		t.Error("a released lease holds its address")
	}
	if declined := newLease("198.18.0.100", macB, Declined, hour); !declined.Holds(t0) {
		t.Error("a declined lease does not hold its address in quarantine")
	}
	verify(t, a)
}

func TestReservations(t *testing.T) {
	a := setup(t, withPools(rng("198.18.0.100", "198.18.0.101")), nil, nil, nil, nil)
	if err := a.SetReservation(macA, ip("198.18.0.100")); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Choose(macB, ip("198.18.0.100"), t0); err != nil || got != ip("198.18.0.101") {
		t.Fatalf("Choose(B) = %v, %v; want .101", got, err)
	}
	if err := a.SetReservation(macB, ip("198.18.0.100")); !errors.Is(err, ErrReserved) {
		t.Fatalf("SetReservation of A's address = %v, want ErrReserved", err)
	}
	if got, ok := a.Reservation(macA); !ok || got != ip("198.18.0.100") {
		t.Fatalf("Reservation(A) = %v, %v; want .100", got, ok)
	}
	if got, ok := a.Reservation(macB); ok {
		t.Fatalf("Reservation(B) = %v, want none", got)
	}
	if err := a.SetReservation(macB, ip("198.18.0.255")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetReservation(broadcast) = %v, want ErrInvalid", err)
	}
	if got, want := a.Stats(t0), (Stats{Size: 1, Free: 1, Reservations: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	// Moving A's reservation gives .100 back to the pool.
	if err := a.SetReservation(macA, ip("198.18.0.50")); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Choose(macB, ip("198.18.0.100"), t0); err != nil || got != ip("198.18.0.100") {
		t.Fatalf("Choose(B) = %v, %v; want .100", got, err)
	}
	// A MAC given a reservation lets its pending offer go.
	offered, err := a.Offer(macB, netip.Addr{}, t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetReservation(macB, ip("198.18.0.51")); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(macC, offered, t0); err != nil {
		t.Fatalf("B's offer outlived its reservation: %v", err)
	}
	a.RemoveReservation(macB)
	// A new reservation ends another MAC's pending offer of the address.
	offered, err = a.Offer(macD, netip.Addr{}, t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetReservation(macC, offered); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Choose(macC, netip.Addr{}, t0); err != nil || got != offered {
		t.Fatalf("Choose(C) = %v, %v; want its reservation %v", got, err, offered)
	}
	a.RemoveReservation(macC)
	// Another MAC's lease on a new reservation: the reserved MAC waits.
	if err := a.Observe(newLease("198.18.0.101", macB, Active, t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := a.SetReservation(macC, ip("198.18.0.101")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Choose(macC, netip.Addr{}, t0); !errors.Is(err, ErrTaken) {
		t.Fatalf("Choose(C) = %v, want ErrTaken", err)
	}
	if err := a.Check(macB, ip("198.18.0.101"), t0); !errors.Is(err, ErrReserved) {
		t.Fatalf("B renewing C's address: %v, want ErrReserved", err)
	}
	a.RemoveReservation(macC)
	a.RemoveReservation(macC)
	if err := a.Check(macB, ip("198.18.0.101"), t0); err != nil {
		t.Fatalf("B renewing after the reservation went: %v", err)
	}
	verify(t, a)
}

func TestStats(t *testing.T) {
	hour := t0.Add(time.Hour)
	a := setup(t, lab(), map[string]string{macD: "198.18.0.199", macC: "198.18.0.20"}, []Lease{
		newLease("198.18.0.100", macA, Active, hour),
		newLease("198.18.0.101", macB, Offered, hour),
		newLease("198.18.0.102", macC, Declined, hour),
		newLease("198.18.0.103", "02:00:00:00:00:01", Active, t0), // expired
		newLease("198.18.0.104", "02:00:00:00:00:02", Released, t0.Add(-time.Minute)),
	}, nil, []holdAt{{"02:00:00:00:00:03", "198.18.0.105", hour}})
	want := Stats{Size: 99, Free: 95, Leased: 2, Held: 1, Declined: 1, Reservations: 2}
	if diff := cmp.Diff(want, a.Stats(t0)); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	want = Stats{Size: 99, Free: 99, Reservations: 2}
	if diff := cmp.Diff(want, a.Stats(hour)); diff != "" {
		t.Errorf("Stats an hour later (-want +got):\n%s", diff)
	}
}

// TestConcurrentOffers has many goroutines take addresses for distinct
// MACs, with Offer and with Choose then Hold, until the pool runs out: no
// address goes to two MACs and every address goes to someone. Run it with
// -race.
func TestConcurrentOffers(t *testing.T) {
	s := lab()
	s.Prefix = netip.MustParsePrefix("198.18.0.0/22")
	s.Pools = []Range{rng("198.18.0.100", "198.18.3.200")} // 869 addresses
	s.Reserved = nil
	a := setup(t, s, nil, nil, nil, nil)
	size := a.Stats(t0).Size
	const workers, perWorker = 32, 32 // 1024 MACs
	var (
		mu  sync.Mutex
		got = map[netip.Addr]string{}
		wg  sync.WaitGroup
	)
	exhausted := 0
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				mac := fmt.Sprintf("02:00:00:00:%02x:%02x", w, i)
				ip, err := take(a, mac, w%2 == 0)
				mu.Lock()
				switch {
				case errors.Is(err, ErrExhausted):
					exhausted++
				case err != nil:
					t.Errorf("%s: %v", mac, err)
				case got[ip] != "":
					t.Errorf("%s given to %s and %s", ip, got[ip], mac)
				default:
					got[ip] = mac
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != size || exhausted != workers*perWorker-size {
		t.Errorf("%d addresses given, %d refused; want %d and %d", len(got), exhausted, size, workers*perWorker-size)
	}
	verify(t, a)
}

// take gets mac an address with Offer or with Choose then Hold, retrying
// when another goroutine holds the chosen address first.
func take(a *Allocator, mac string, offer bool) (netip.Addr, error) {
	until := t0.Add(time.Minute)
	if offer {
		return a.Offer(mac, netip.Addr{}, t0, until)
	}
	for range 10000 {
		ip, err := a.Choose(mac, netip.Addr{}, t0)
		if err != nil {
			return ip, err
		}
		err = a.Hold(mac, ip, t0, until)
		if !errors.Is(err, ErrTaken) {
			return ip, err
		}
	}
	return netip.Addr{}, errors.New("Choose keeps choosing taken addresses")
}

func TestLeaseStateString(t *testing.T) {
	got := []string{Offered.String(), Active.String(), Released.String(), Declined.String(), LeaseState(0).String()}
	want := []string{"offered", "active", "released", "declined", "LeaseState(0)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}
