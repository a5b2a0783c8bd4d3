package ipam

import "math/bits"

// bitset is a set of integers in [0, n) that finds its smallest member in
// a few steps: a 64-ary tree of words in which a bit above the leaves says
// whether the word below it has any bit set. For n = 1<<24 the tree has
// four levels.
type bitset struct {
	levels [][]uint64 // levels[0] are the leaves; the last level is one word
	n      int        // number of members
}

func newBitset(size int) *bitset {
	b := &bitset{}
	for {
		words := max(1, (size+63)/64)
		b.levels = append(b.levels, make([]uint64, words))
		if words == 1 {
			return b
		}
		size = words
	}
}

func (b *bitset) has(i int) bool { return b.levels[0][i/64]&(1<<(i%64)) != 0 }

func (b *bitset) add(i int) {
	if b.has(i) {
		return
	}
	b.n++
	for _, l := range b.levels {
		w := i / 64
		was := l[w]
		l[w] |= 1 << (i % 64)
		if was != 0 {
			return
		}
		i = w
	}
}

func (b *bitset) remove(i int) {
	if !b.has(i) {
		return
	}
	b.n--
	for _, l := range b.levels {
		w := i / 64
		l[w] &^= 1 << (i % 64)
		if l[w] != 0 {
			return
		}
		i = w
	}
}

// min returns the smallest member, or -1 if the set is empty.
func (b *bitset) min() int {
	top := len(b.levels) - 1
	if b.levels[top][0] == 0 {
		return -1
	}
	i := 0
	for l := top; l >= 0; l-- {
		i = i*64 + bits.TrailingZeros64(b.levels[l][i])
	}
	return i
}
