package ipam

import "time"

// lru is a min-heap (container/heap) of the used dynamic addresses, least
// recently used first: ordered by freeAt, then by address. The keys live
// in the heap itself, so sifting does not chase pointers; each entry knows
// its position, so a change to one entry costs O(log n).
type lru []item

type item struct {
	// freeAt is the entry's max(used, hold.until): whoever holds the
	// address, it is free for everyone from then on.
	freeAt time.Time
	ip     uint32
	e      *entry
}

func (h lru) Len() int { return len(h) }

func (h lru) Less(i, j int) bool {
	if c := h[i].freeAt.Compare(h[j].freeAt); c != 0 {
		return c < 0
	}
	return h[i].ip < h[j].ip
}

func (h lru) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].e.idx = i
	h[j].e.idx = j
}

func (h *lru) Push(x any) {
	it := x.(item)
	it.e.idx = len(*h)
	*h = append(*h, it)
}

func (h *lru) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = item{}
	*h = old[:len(old)-1]
	it.e.idx = -1
	return it
}
