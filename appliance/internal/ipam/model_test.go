package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file checks the allocator against a reference model: the same rules
// kept in plain maps and answered by scanning every address. Random
// operation sequences (TestAgainstModel) and fuzzed ones (FuzzAllocator)
// drive both and compare every answer, as a DHCP server and the store's
// state machine would use them.

// modelSubnet is small enough to scan and to run out: 198.18.0.0/27,
// gateway .1, pools covering .0-.14 in two overlapping ranges, reserved
// .8-.11: nine dynamic addresses for ten MACs.
func modelSubnet() Subnet {
	return Subnet{
		Prefix:   netip.MustParsePrefix("198.18.0.0/27"),
		Gateway:  ip("198.18.0.1"),
		Pools:    []Range{rng("198.18.0.0", "198.18.0.6"), rng("198.18.0.5", "198.18.0.14")},
		Reserved: []Range{rng("198.18.0.8", "198.18.0.11")},
		Lease:    time.Minute,
	}
}

var (
	modelMACs = []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03",
		"02:00:00:00:00:04", "02:00:00:00:00:05", "02:00:00:00:00:06", "02:00:00:00:00:07",
		"02:00:00:00:00:08", "02:00:00:00:00:09", "02:00:00:00:00:10"}
	freshMAC = "02:00:00:00:00:ff" // never leases or holds anything
)

type mlease struct {
	Lease
	granted bool // committed after the allocator's Check, as the DHCP server does
}

type mhold struct {
	mac   string
	until time.Time
}

type model struct {
	s       Subnet
	res     map[string]netip.Addr
	leases  map[netip.Addr]mlease
	current map[string]netip.Addr // MAC's current lease
	holds   map[netip.Addr]mhold
	holdOf  map[string]netip.Addr
	touched map[netip.Addr]bool // addresses the allocator has used
	maxNow  time.Time
}

func newModel(s Subnet) *model {
	return &model{s: s, res: map[string]netip.Addr{}, leases: map[netip.Addr]mlease{},
		current: map[string]netip.Addr{}, holds: map[netip.Addr]mhold{},
		holdOf: map[string]netip.Addr{}, touched: map[netip.Addr]bool{}}
}

func inAny(rs []Range, a netip.Addr) bool {
	for _, r := range rs {
		if !a.Less(r.Start) && !r.End.Less(a) {
			return true
		}
	}
	return false
}

func (m *model) broadcast() netip.Addr {
	return addr(u32(m.s.Prefix.Addr()) | (1<<(32-m.s.Prefix.Bits()) - 1))
}

// special reports the addresses no MAC may reserve.
func (m *model) special(a netip.Addr) bool {
	return a == m.s.Prefix.Addr() || a == m.broadcast() || a == m.s.Gateway
}

func (m *model) reservedBy(a netip.Addr) (string, bool) {
	for mac, r := range m.res {
		if r == a {
			return mac, true
		}
	}
	return "", false
}

func (m *model) dynamic(a netip.Addr) bool {
	_, r := m.reservedBy(a)
	return m.s.Prefix.Contains(a) && inAny(m.s.Pools, a) && !inAny(m.s.Reserved, a) && !m.special(a) && !r
}

// allowed is the rule: may mac have a at now?
func (m *model) allowed(mac string, a netip.Addr, now time.Time) error {
	if !m.s.Prefix.Contains(a) {
		return ErrNotInPool
	}
	if r, ok := m.res[mac]; ok {
		if r != a {
			return ErrReserved
		}
	} else {
		if _, other := m.reservedBy(a); other || m.special(a) || inAny(m.s.Reserved, a) {
			return ErrReserved
		}
		if !inAny(m.s.Pools, a) {
			return ErrNotInPool
		}
	}
	if l, ok := m.leases[a]; ok && l.Expires.After(now) {
		if l.State == Declined {
			return ErrQuarantined
		}
		if (l.State == Active || l.State == Offered) && l.MAC != mac {
			return ErrTaken
		}
	}
	if h, ok := m.holds[a]; ok && h.mac != mac && h.until.After(now) {
		return ErrTaken
	}
	return nil
}

// storeAccepts is the store's own rule for committing l at now.
func (m *model) storeAccepts(l Lease, now time.Time) bool {
	cur, ok := m.leases[l.IP]
	return !ok || cur.MAC == l.MAC || cur.State == Released || !cur.Expires.After(now)
}

// addrs lists every address of the prefix and one outside it.
func (m *model) addrs() []netip.Addr {
	var out []netip.Addr
	for a := m.s.Prefix.Addr(); m.s.Prefix.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return append(out, ip("198.18.1.1"))
}

// choice is what Choose must answer: an address, an error, or, when the
// least recently used free address is wanted, the free addresses.
func (m *model) choice(mac string, req netip.Addr, now time.Time) (netip.Addr, error, []netip.Addr) {
	if r, ok := m.res[mac]; ok {
		return r, m.allowed(mac, r, now), nil
	}
	if len(m.s.Pools) == 0 {
		return netip.Addr{}, ErrNoPool, nil
	}
	if c, ok := m.current[mac]; ok && m.allowed(mac, c, now) == nil {
		return c, nil, nil
	}
	if h, ok := m.holdOf[mac]; ok && m.allowed(mac, h, now) == nil {
		return h, nil, nil
	}
	if req.IsValid() && m.allowed(mac, req, now) == nil {
		return req, nil, nil
	}
	var free []netip.Addr
	for _, a := range m.addrs() {
		if !m.dynamic(a) {
			continue
		}
		if !m.touched[a] {
			return a, nil, nil // never used, lowest first
		}
		if m.allowed(freshMAC, a, now) == nil {
			free = append(free, a)
		}
	}
	if len(free) == 0 {
		return netip.Addr{}, ErrExhausted, nil
	}
	return netip.Addr{}, nil, free
}

func (m *model) forget(a netip.Addr) {
	if l, ok := m.leases[a]; ok {
		if m.current[l.MAC] == a {
			delete(m.current, l.MAC)
		}
		delete(m.leases, a)
	}
}

func (m *model) dropHold(a netip.Addr) {
	if h, ok := m.holds[a]; ok {
		if m.holdOf[h.mac] == a {
			delete(m.holdOf, h.mac)
		}
		delete(m.holds, a)
	}
}

func (m *model) hold(mac string, a netip.Addr, until time.Time) {
	if h, ok := m.holdOf[mac]; ok && h != a {
		m.dropHold(h)
	}
	m.dropHold(a)
	m.holds[a] = mhold{mac, until}
	m.holdOf[mac] = a
	m.touched[a] = true
}

// observe mirrors the store: one lease per MAC, declined leases belong to
// nobody's stickiness.
func (m *model) observe(l Lease, granted bool) {
	if c, ok := m.current[l.MAC]; ok && c != l.IP && l.State != Declined {
		m.forget(c)
	}
	if p, ok := m.leases[l.IP]; ok && (p.MAC != l.MAC || l.State == Declined) && m.current[p.MAC] == l.IP {
		delete(m.current, p.MAC)
	}
	m.leases[l.IP] = mlease{l, granted}
	if l.State != Declined {
		m.current[l.MAC] = l.IP
	}
	if h, ok := m.holds[l.IP]; ok && (h.mac == l.MAC || l.State != Released) {
		m.dropHold(l.IP)
	}
	if h, ok := m.holdOf[l.MAC]; ok && h != l.IP && (l.State == Active || l.State == Offered) {
		m.dropHold(h)
	}
	m.touched[l.IP] = true
}

func (m *model) reserve(mac string, a netip.Addr) error {
	if !m.s.Prefix.Contains(a) || m.special(a) {
		return ErrInvalid
	}
	if other, ok := m.reservedBy(a); ok && other != mac {
		return ErrReserved
	}
	m.res[mac] = a
	if h, ok := m.holdOf[mac]; ok && h != a {
		m.dropHold(h)
	}
	if h, ok := m.holds[a]; ok && h.mac != mac {
		m.dropHold(a)
	}
	return nil
}

// settle forgets the use of addresses that are not dynamic and have no
// lease or hold, as the allocator does.
func (m *model) settle() {
	for a := range m.touched {
		_, l := m.leases[a]
		_, h := m.holds[a]
		if !m.dynamic(a) && !l && !h {
			delete(m.touched, a)
		}
	}
}

func (m *model) stats(now time.Time) Stats {
	s := Stats{Reservations: len(m.res)}
	for _, a := range m.addrs() {
		if !m.dynamic(a) {
			continue
		}
		s.Size++
		l, hasLease := m.leases[a]
		h, hasHold := m.holds[a]
		switch {
		case hasLease && l.State == Declined && l.Expires.After(now):
			s.Declined++
		case hasLease && (l.State == Active || l.State == Offered) && l.Expires.After(now):
			s.Leased++
		case hasHold && h.until.After(now):
			s.Held++
		default:
			s.Free++
		}
	}
	return s
}

// run decodes data into a sequence of operations, applies each to an
// allocator and to the model, and fails at the first disagreement. After
// every step it compares Stats and the internal invariants; it compares
// Check for every MAC at every address at the start and the end, and, with
// sweep, for two MACs after every step.
func run(t testing.TB, data []byte, sweep bool) {
	r := &runner{t: t, data: data, now: t0}
	r.m = newModel(modelSubnet())
	if !r.start() {
		return
	}
	for i := 0; len(r.data) > 0; i++ {
		r.step()
		r.m.settle()
		var macs []string
		switch {
		case len(r.data) == 0:
			macs = append(modelMACs, freshMAC)
		case sweep:
			macs = []string{freshMAC, modelMACs[i%len(modelMACs)]}
		}
		r.compare(macs)
	}
}

type runner struct {
	t    testing.TB
	data []byte
	a    *Allocator
	m    *model
	now  time.Time
	log  []string
}

func (r *runner) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *runner) mac() string { return modelMACs[int(r.byte())%len(modelMACs)] }

func (r *runner) addr() netip.Addr {
	switch b := r.byte(); {
	case b >= 248:
		return ip("198.18.1.7")
	case b >= 200:
		return addr(u32(ip("198.18.0.0")) + uint32(b%32))
	default:
		return addr(u32(ip("198.18.0.0")) + uint32(b%16))
	}
}

// after returns a time up to about four minutes from now.
func (r *runner) after() time.Time { return r.now.Add(time.Duration(r.byte()) * time.Second) }

func (r *runner) tick(now time.Time) {
	if now.After(r.m.maxNow) {
		r.m.maxNow = now
	}
}

func (r *runner) fail(format string, args ...any) {
	tail := r.log[max(0, len(r.log)-30):]
	r.t.Fatalf("%s\nat %v, after (last %d of %d operations):\n  %s", fmt.Sprintf(format, args...),
		r.now.Sub(t0), len(tail), len(r.log), strings.Join(tail, "\n  "))
}

func (r *runner) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf("%v ", r.now.Sub(t0))+fmt.Sprintf(format, args...))
}

// start builds the allocator from decoded reservations and leases.
func (r *runner) start() bool {
	res := map[string]netip.Addr{}
	for range r.byte() % 3 {
		mac, a := r.mac(), r.addr()
		res[mac] = a
	}
	var leases []Lease
	for range r.byte() % 6 {
		l := Lease{IP: r.addr(), MAC: r.mac(), State: LeaseState(1 + r.byte()%4)}
		l.Expires = t0.Add(time.Duration(int(r.byte())-128) * time.Second)
		leases = append(leases, l)
	}
	return r.rebuild(res, leases)
}

// rebuild makes a new allocator, as after a restart, and a model from the
// same facts. It reports whether New accepted them.
func (r *runner) rebuild(res map[string]netip.Addr, leases []Lease) bool {
	r.logf("New(%v, %v)", res, leases)
	a, err := New(r.m.s, res, leases, r.now)
	m := newModel(r.m.s)
	m.maxNow = r.now
	wantErr := false
	for _, mac := range slices.Sorted(func(yield func(string) bool) {
		for mac := range res {
			if !yield(mac) {
				return
			}
		}
	}) {
		if m.reserve(mac, res[mac]) != nil {
			wantErr = true
		}
	}
	seen := map[netip.Addr]bool{}
	for _, l := range leases {
		if !m.s.Prefix.Contains(l.IP) || seen[l.IP] {
			wantErr = true
			continue
		}
		seen[l.IP] = true
		m.leases[l.IP] = mlease{l, true}
		m.touched[l.IP] = true
		if c, ok := m.current[l.MAC]; l.State != Declined && (!ok || !m.leases[c].Expires.After(l.Expires)) {
			m.current[l.MAC] = l.IP
		}
	}
	if (err != nil) != wantErr {
		r.fail("New: %v; model expects an error: %v", err, wantErr)
	}
	if err != nil {
		return false
	}
	m.settle()
	r.a, r.m = a, m
	r.compare(append(modelMACs, freshMAC))
	return true
}

// Operations, and how often a byte picks each.
const (
	opOffer = iota
	opChoose
	opHold
	opActive
	opOffered
	opRelease
	opDecline
	opAdvance
	opRewind
	opForget
	opMachine
	opForeign
	opRestart
)

var opTable = []int{opOffer, opOffer, opOffer, opChoose, opHold, opActive, opActive, opActive,
	opActive, opOffered, opRelease, opDecline, opAdvance, opAdvance, opRewind, opForget,
	opMachine, opForeign, opRestart}

func (r *runner) step() {
	switch op := opTable[int(r.byte())%len(opTable)]; op {
	case opOffer, opChoose: // DHCPDISCOVER
		mac, req, until := r.mac(), r.addr(), r.after()
		if r.byte()%2 == 0 {
			req = netip.Addr{}
		}
		r.tick(r.now)
		if op == opOffer {
			got, err := r.a.Offer(mac, req, r.now, until)
			r.logf("Offer(%s, %v, until +%v) = %v, %v", mac, req, until.Sub(r.now), got, err)
			r.checkChoice(mac, req, got, err)
			if err == nil {
				r.m.hold(mac, got, until)
			}
		} else {
			got, err := r.a.Choose(mac, req, r.now)
			r.logf("Choose(%s, %v) = %v, %v", mac, req, got, err)
			r.checkChoice(mac, req, got, err)
		}
	case opHold:
		mac, a, until := r.mac(), r.addr(), r.after()
		r.tick(r.now)
		err := r.a.Hold(mac, a, r.now, until)
		r.logf("Hold(%s, %v, until +%v) = %v", mac, a, until.Sub(r.now), err)
		r.sameErr("Hold", err, r.m.allowed(mac, a, r.now))
		if err == nil {
			r.m.hold(mac, a, until)
		}
	case opActive, opOffered: // DHCPREQUEST, then the commit of a lease
		mac, a := r.mac(), r.addr()
		if h, ok := r.m.holdOf[mac]; ok && r.byte()%4 != 0 {
			a = h
		}
		l := Lease{IP: a, MAC: mac, State: Active, Expires: r.after()}
		if op == opOffered {
			l.State = Offered
		}
		r.tick(r.now)
		err := r.a.Check(mac, a, r.now)
		r.logf("Check(%s, %v) = %v", mac, a, err)
		r.sameErr("Check", err, r.m.allowed(mac, a, r.now))
		if err == nil {
			if !r.m.storeAccepts(l, r.now) {
				r.fail("the store refuses %+v that Check allowed", l)
			}
			r.commit(l, true)
		}
	case opRelease:
		mac := r.mac()
		if a, ok := r.m.current[mac]; ok {
			r.commit(Lease{IP: a, MAC: mac, State: Released, Expires: r.now}, r.m.leases[a].granted)
		}
	case opDecline:
		l := Lease{IP: r.addr(), MAC: r.mac(), State: Declined, Expires: r.after()}
		if r.m.s.Prefix.Contains(l.IP) && r.m.storeAccepts(l, r.now) {
			r.commit(l, false)
		}
	case opAdvance:
		r.now = r.now.Add(time.Duration(r.byte()) * time.Second / 8)
	case opRewind: // a clock runs back a little
		r.now = r.now.Add(-time.Duration(r.byte()%8) * time.Second)
	case opForget: // an operator or the reclaimer deletes a lease
		a := r.addr()
		r.logf("Forget(%v)", a)
		r.a.Forget(a)
		r.m.forget(a)
	case opMachine: // machines added, changed, deleted
		mac, a := r.mac(), r.addr()
		if r.byte()%3 == 0 {
			r.logf("RemoveReservation(%s)", mac)
			r.a.RemoveReservation(mac)
			delete(r.m.res, mac)
			return
		}
		err := r.a.SetReservation(mac, a)
		r.logf("SetReservation(%s, %v) = %v", mac, a, err)
		r.sameErr("SetReservation", err, r.m.reserve(mac, a))
	case opForeign: // a commit the allocator did not check: another proposer, an operator
		l := Lease{IP: r.addr(), MAC: r.mac(), State: LeaseState(1 + r.byte()%3), Expires: r.after()}
		if r.m.s.Prefix.Contains(l.IP) && r.m.storeAccepts(l, r.now) {
			r.commit(l, false)
		}
	case opRestart: // rebuild from the store
		if r.byte()%4 != 0 {
			return
		}
		res := map[string]netip.Addr{}
		for mac, a := range r.m.res {
			res[mac] = a
		}
		var leases []Lease
		for _, a := range r.m.addrs() {
			if l, ok := r.m.leases[a]; ok {
				leases = append(leases, l.Lease)
			}
		}
		r.tick(r.now)
		r.rebuild(res, leases)
	}
}

func (r *runner) commit(l Lease, granted bool) {
	err := r.a.Observe(l)
	r.logf("Observe(%v %s %s until +%v) = %v", l.IP, l.MAC, l.State, l.Expires.Sub(r.now), err)
	if err != nil {
		r.fail("Observe: %v", err)
	}
	r.m.observe(l, granted)
}

func (r *runner) sameErr(what string, got, want error) {
	if differ(got, want) {
		r.fail("%s = %v, model says %v", what, got, want)
	}
}

func differ(got, want error) bool {
	return (got == nil) != (want == nil) || want != nil && !errors.Is(got, want)
}

func (r *runner) checkChoice(mac string, req, got netip.Addr, err error) {
	want, wantErr, free := r.m.choice(mac, req, r.now)
	switch {
	case wantErr != nil:
		if !errors.Is(err, wantErr) {
			r.fail("got %v, %v; model says %v", got, err, wantErr)
		}
	case want.IsValid():
		if err != nil || got != want {
			r.fail("got %v, %v; model says %v", got, err, want)
		}
	case err != nil:
		// Only a clock that ran back may hide a free address.
		if !errors.Is(err, ErrExhausted) || !r.now.Before(r.m.maxNow) {
			r.fail("got %v; model has free addresses %v", err, free)
		}
	case !slices.Contains(free, got):
		r.fail("got %v; model's free addresses are %v", got, free)
	}
	if err == nil {
		if e := r.m.allowed(mac, got, r.now); e != nil {
			r.fail("gave %s %v, which the model refuses: %v", mac, got, e)
		}
	}
}

// compare checks the allocator's answers about the present (Check for each
// of macs at every address, Stats) against the model, and the invariant no test may break: no address is
// granted to two MACs at once.
func (r *runner) compare(macs []string) {
	verify(r.t, r.a)
	for _, a := range r.m.addrs() {
		for _, mac := range macs {
			if got, want := r.a.Check(mac, a, r.now), r.m.allowed(mac, a, r.now); differ(got, want) {
				r.fail("Check(%s, %v) = %v, model says %v", mac, a, got, want)
			}
		}
		var holder, leaser string
		if h, ok := r.m.holds[a]; ok && h.until.After(r.now) {
			holder = h.mac
		}
		if l, ok := r.m.leases[a]; ok && l.granted && (l.State == Active || l.State == Offered) && l.Expires.After(r.now) {
			leaser = l.MAC
		}
		// Grants are checked at their own times: a clock that ran back
		// sees grants made later, and their lapsed predecessors.
		if holder != "" && leaser != "" && holder != leaser && !r.now.Before(r.m.maxNow) {
			r.fail("%v is offered to %s and leased to %s at once", a, holder, leaser)
		}
	}
	r.tick(r.now)
	if got, want := r.a.Stats(r.now), r.m.stats(r.now); got != want {
		r.fail("Stats = %+v, model says %+v", got, want)
	}
}

// TestAgainstModel runs random operation sequences against the allocator
// and the model.
func TestAgainstModel(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 20
	}
	rnd := rand.New(rand.NewPCG(20260301, 1))
	for i := range runs {
		data := make([]byte, 100+rnd.IntN(400))
		for j := range data {
			data[j] = byte(rnd.Uint32())
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { run(t, data, true) })
	}
}

// FuzzAllocator fuzzes the operation sequences. Without -fuzz it runs the
// seeds below and those in testdata/fuzz/FuzzAllocator.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 0, 5, 1, 12, 3, 2, 9, 0, 0, 0})
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		data := make([]byte, 64)
		for j := range data {
			data[j] = byte(rnd.Uint32())
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Long inputs say little more than short ones and make the fuzzer
		// slow to minimize what it finds (it tries O(len²) cuts).
		if len(data) > 128 {
			t.Skip()
		}
		run(t, data, false)
	})
}
