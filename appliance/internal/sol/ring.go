package sol

// ring keeps the last len(buf) bytes written to it: a session's
// scrollback.
type ring struct {
	buf  []byte
	next int  // where the next byte goes
	full bool // buf has wrapped: it holds len(buf) bytes
}

func newRing(size int) *ring { return &ring{buf: make([]byte, size)} }

// Write appends p, forgetting the oldest bytes beyond the ring's size.
func (r *ring) Write(p []byte) {
	size := len(r.buf)
	if len(p) >= size {
		copy(r.buf, p[len(p)-size:])
		r.next, r.full = 0, true
		return
	}
	n := copy(r.buf[r.next:], p)
	copy(r.buf, p[n:])
	if r.next+len(p) >= size {
		r.full = true
	}
	r.next = (r.next + len(p)) % size
}

// Bytes returns a copy of what the ring holds, oldest first.
func (r *ring) Bytes() []byte {
	if !r.full {
		return append([]byte(nil), r.buf[:r.next]...)
	}
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Len is how many bytes the ring holds.
func (r *ring) Len() int {
	if r.full {
		return len(r.buf)
	}
	return r.next
}
