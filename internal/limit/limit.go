// Package limit caps how many of something are under way at once, in
// total and per source (a client's address): the connections of an HTTP
// server (package httpserve), the transfers of the TFTP server. A server
// asks for a slot before it spends a file descriptor on a client and
// gives it back when the client is done, so that one client, or a flood
// of them, cannot take what the other servers of the process need.
package limit

import "sync"

// Reason says which cap refused a slot.
type Reason string

// Reasons of a refusal.
const (
	Total  Reason = "total"
	Source Reason = "source"
)

// Slots hands out slots under a total cap and a cap per source. The zero
// value has no caps. It is safe for concurrent use.
type Slots struct {
	total, perSource int

	mu       sync.Mutex
	inUse    int
	bySource map[string]int
}

// New returns slots capped at total in all and perSource for any one
// source; 0 leaves a cap off.
func New(total, perSource int) *Slots {
	return &Slots{total: total, perSource: perSource, bySource: map[string]int{}}
}

// Acquire takes a slot for source. When a cap is reached it takes
// nothing and returns false and the cap that refused.
func (s *Slots) Acquire(source string) (bool, Reason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total > 0 && s.inUse >= s.total {
		return false, Total
	}
	if s.perSource > 0 && s.bySource[source] >= s.perSource {
		return false, Source
	}
	s.inUse++
	if s.perSource > 0 {
		if s.bySource == nil {
			s.bySource = map[string]int{}
		}
		s.bySource[source]++
	}
	return true, ""
}

// Release gives back a slot Acquire gave for source.
func (s *Slots) Release(source string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse--
	if s.perSource > 0 {
		if n := s.bySource[source] - 1; n > 0 {
			s.bySource[source] = n
		} else {
			delete(s.bySource, source)
		}
	}
}

// InUse is the number of slots taken.
func (s *Slots) InUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse
}
