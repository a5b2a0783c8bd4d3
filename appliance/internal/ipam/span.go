package ipam

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
)

// Addresses are handled as uint32 inside the package.

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// span is an inclusive range of addresses.
type span struct{ lo, hi uint32 }

func (s span) size() uint64 { return uint64(s.hi) - uint64(s.lo) + 1 }

// merge sorts spans and joins those that overlap or touch.
func merge(ss []span) []span {
	ss = slices.Clone(ss)
	slices.SortFunc(ss, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	var out []span
	for _, s := range ss {
		if n := len(out); n > 0 && uint64(s.lo) <= uint64(out[n-1].hi)+1 {
			out[n-1].hi = max(out[n-1].hi, s.hi)
			continue
		}
		out = append(out, s)
	}
	return out
}

// subtract returns the parts of a not in b; both are merged.
func subtract(a, b []span) []span {
	var out []span
	j := 0
	for _, s := range a {
		for j < len(b) && b[j].hi < s.lo {
			j++
		}
		lo, covered := s.lo, false
		for k := j; k < len(b) && b[k].lo <= s.hi; k++ {
			if b[k].lo > lo {
				out = append(out, span{lo, b[k].lo - 1})
			}
			if b[k].hi >= s.hi {
				covered = true
				break
			}
			lo = b[k].hi + 1
		}
		if !covered {
			out = append(out, span{lo, s.hi})
		}
	}
	return out
}

// contains reports whether u is in one of the merged spans ss.
func contains(ss []span, u uint32) bool {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].hi >= u })
	return i < len(ss) && ss[i].lo <= u
}
