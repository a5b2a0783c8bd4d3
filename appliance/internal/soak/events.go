package soak

import "fmt"

// Event is an event as the soak compares them: its sequence and what
// identifies its content.
type Event struct {
	Seq  uint64
	Kind string
	Body string // message and time, as recorded
}

// CheckEvents compares central's events of the site with the site's
// own: central's must run densely from 1 (a gap is a lost event, a
// sequence twice a duplicated one) up to the site's last, and each must
// be the site's event of that sequence. The site may have pruned its
// oldest (site starts later than 1); those are checked for density
// only. It returns how many were lost and duplicated.
func (c *Checker) CheckEvents(site, central []Event) (lost, dup int) {
	bySeq := make(map[uint64]Event, len(site))
	var last uint64
	for _, e := range site {
		bySeq[e.Seq] = e
		last = max(last, e.Seq)
	}
	seen := make(map[uint64]bool, len(central))
	var next uint64 = 1
	for _, e := range central {
		switch {
		case seen[e.Seq]:
			dup++
			c.Violate(InvDupEvent, "central holds event %d twice", e.Seq)
			continue
		case e.Seq > next:
			lost += int(e.Seq - next)
			c.Violate(InvLostEvent, "central has no events %d to %d", next, e.Seq-1)
		}
		seen[e.Seq] = true
		next = max(next, e.Seq+1)
		if s, ok := bySeq[e.Seq]; ok && (s.Kind != e.Kind || s.Body != e.Body) {
			dup++
			c.Violate(InvEventBody, "central's event %d is %s %q, the site's %s %q", e.Seq, e.Kind, e.Body, s.Kind, s.Body)
		}
	}
	if last >= next {
		lost += int(last - next + 1)
		c.Violate(InvLostEvent, "central stored events to %d, the site recorded to %d", next-1, last)
	}
	return lost, dup
}

// Sample is one reading of a daemon process from /proc and its
// metrics.
type Sample struct {
	At         float64 `json:"at_s"`
	FDs        int     `json:"fds"`
	RSSKiB     int     `json:"rss_kib"`
	Goroutines int     `json:"goroutines"` // -1: not known
	// Leads is whether the process led its cluster when sampled. A
	// leader holds every client's connections and the replication
	// streams, a follower neither: growth is measured between samples
	// of one role, since a change of role is not a leak.
	Leads bool `json:"leads"`
}

// Resource limits: growth from a process's first sample after warm-up
// to its last, and RSS at any time.
const (
	fdGrowth        = 64
	goroutineGrowth = 500
	maxRSSKiB       = 1 << 20 // 1 GiB
)

// Sampled records a sample of process name (one incarnation: a
// restarted daemon is a new name).
func (c *Checker) Sampled(name string, s Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples[name] = append(c.samples[name], s)
	if s.RSSKiB > maxRSSKiB {
		c.violateLocked(InvResources, fmt.Sprintf("%s: RSS %d MiB, over %d MiB", name, s.RSSKiB>>10, maxRSSKiB>>20))
	}
}

// CheckResources checks each process's growth from its first sample at
// warmup on (seconds after the soak's start) in the role of its last
// sample, to its last: file descriptors by more than fdGrowth,
// goroutines by more than goroutineGrowth.
func (c *Checker) CheckResources(warmup float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, ss := range c.samples {
		last := ss[len(ss)-1]
		var first *Sample
		for i := range ss {
			if ss[i].At >= warmup && ss[i].Leads == last.Leads {
				first = &ss[i]
				break
			}
		}
		if first == nil || last.At-first.At < 30 {
			continue // too short a life to tell growth from start-up
		}
		if d := last.FDs - first.FDs; d > fdGrowth {
			c.violateLocked(InvResources, fmt.Sprintf("%s: file descriptors grew by %d (%d → %d)", name, d, first.FDs, last.FDs))
		}
		if first.Goroutines >= 0 && last.Goroutines >= 0 {
			if d := last.Goroutines - first.Goroutines; d > goroutineGrowth {
				c.violateLocked(InvResources, fmt.Sprintf("%s: goroutines grew by %d (%d → %d)", name, d, first.Goroutines, last.Goroutines))
			}
		}
	}
}

// Samples returns a copy of every process's samples.
func (c *Checker) Samples() map[string][]Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]Sample, len(c.samples))
	for k, v := range c.samples {
		out[k] = append([]Sample(nil), v...)
	}
	return out
}
