package ipam

import "time"

// lru is a binary min-heap of the used dynamic addresses, least recently
// used first: ordered by freeAt, then by address. The keys live in the
// heap itself, so sifting does not chase pointers; each entry knows its
// position, so a change to one entry costs O(log n). (container/heap would
// box every item it pushes or pops.)
type lru []item

type item struct {
	// freeAt is the entry's freeAt(): whoever holds the address, it is
	// free for everyone from then on.
	freeAt time.Time
	ip     uint32
	e      *entry
}

func (h lru) less(i, j int) bool {
	if c := h[i].freeAt.Compare(h[j].freeAt); c != 0 {
		return c < 0
	}
	return h[i].ip < h[j].ip
}

func (h lru) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].e.idx = i
	h[j].e.idx = j
}

func (h *lru) push(it item) {
	it.e.idx = len(*h)
	*h = append(*h, it)
	h.up(it.e.idx)
}

// remove takes out the item at i.
func (h *lru) remove(i int) {
	last := len(*h) - 1
	e := (*h)[i].e
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = item{}
	*h = (*h)[:last]
	e.idx = -1
	if i != last {
		h.fix(i)
	}
}

// fix restores the order after the key at i changed.
func (h lru) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h lru) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts the item at i down and reports whether it moved.
func (h lru) down(i int) bool {
	start := i
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h.less(r, c) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}
