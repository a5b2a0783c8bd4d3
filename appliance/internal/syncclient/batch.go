package syncclient

import (
	"sync/atomic"

	"github.com/outposthq/outpost/syncproto"
)

// A link that drops every connection before a whole events message has
// crossed it would stall sync for good at a fixed batch size: each
// session sends the same batch again from its first event, and central
// stores nothing of a message it did not read whole. So the batch adapts:
// a session that ends with events sent and not acknowledged halves it,
// down to minBatch, and each acknowledgement doubles it again, up to
// syncproto.MaxEventsPerBatch. On a sound link a batch is acknowledged
// and the size stays at the largest.

// minBatch is the fewest events a batch is cut to: a few KiB, which any
// link that carries a hello and a welcome carries too.
const minBatch = 8

// batchSize is the number of events the sender puts in one message now.
type batchSize struct{ n atomic.Int64 } // 0: syncproto.MaxEventsPerBatch

// get is the current size.
func (b *batchSize) get() int {
	if n := b.n.Load(); n > 0 {
		return int(n)
	}
	return syncproto.MaxEventsPerBatch
}

// acked doubles the size after an acknowledgement.
func (b *batchSize) acked() {
	b.n.Store(int64(min(2*b.get(), syncproto.MaxEventsPerBatch)))
}

// cut halves the size after a session ended with a batch unacknowledged,
// and returns the new size.
func (b *batchSize) cut() int {
	n := max(b.get()/2, minBatch)
	b.n.Store(int64(n))
	return n
}
