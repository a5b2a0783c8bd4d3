package ipam

import "testing"

// verify checks the allocator's internal invariants (see doc.go).
func verify(t testing.TB, a *Allocator) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, it := range a.lru {
		e := it.e
		if e.idx != i || it.ip != e.ip {
			t.Fatalf("lru[%d] is %v for %v with index %d", i, addr(it.ip), addr(e.ip), e.idx)
		}
		if i > 0 && a.lru.less(i, (i-1)/2) {
			t.Fatalf("lru[%d] (%v) sorts before its parent", i, addr(e.ip))
		}
		if a.entries[e.ip] != e {
			t.Fatalf("lru[%d] (%v) is not in entries", i, addr(e.ip))
		}
		if !it.freeAt.Equal(e.freeAt()) {
			t.Fatalf("%v: freeAt %v, want %v", addr(e.ip), it.freeAt, e.freeAt())
		}
	}
	for u, e := range a.entries {
		switch {
		case e.ip != u:
			t.Fatalf("entries[%v] is for %v", addr(u), addr(e.ip))
		case a.isDynamic(u) != (e.idx >= 0):
			t.Fatalf("%v: dynamic %v but lru index %d", addr(u), a.isDynamic(u), e.idx)
		case !a.isDynamic(u) && e.empty():
			t.Fatalf("%v: an empty entry kept for an address that is not dynamic", addr(u))
		case e.hold.mac != "" && a.holdOf[e.hold.mac] != u:
			t.Fatalf("%v: held for %s, whose hold is %v", addr(u), e.hold.mac, addr(a.holdOf[e.hold.mac]))
		}
	}
	for mac, u := range a.holdOf {
		if e := a.entries[u]; e == nil || e.hold.mac != mac {
			t.Fatalf("holdOf[%s] = %v, which is not held for it", mac, addr(u))
		}
	}
	for mac, u := range a.leaseOf {
		if e := a.entries[u]; e == nil || e.lease.mac != mac || e.lease.state == Declined {
			t.Fatalf("leaseOf[%s] = %v, which has no lease of it", mac, addr(u))
		}
	}
	n := 0
	for _, s := range a.dynamic {
		for u := uint64(s.lo); u <= uint64(s.hi); u++ {
			i := int(uint32(u) - a.base)
			_, hasEntry := a.entries[uint32(u)]
			if want := a.isDynamic(uint32(u)) && !hasEntry; a.unused.has(i) != want {
				t.Fatalf("%v: in the never-used set %v, want %v", addr(uint32(u)), a.unused.has(i), want)
			}
			if a.unused.has(i) {
				n++
			}
		}
	}
	if n != a.unused.n {
		t.Fatalf("never-used set counts %d, has %d", a.unused.n, n)
	}
	for l := 1; l < len(a.unused.levels); l++ {
		for w, word := range a.unused.levels[l-1] {
			if up := a.unused.levels[l][w/64]&(1<<(w%64)) != 0; up != (word != 0) {
				t.Fatalf("bitset level %d word %d: summary bit %v, word %#x", l, w, up, word)
			}
		}
	}
}
