package syncproto

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
)

// TestExactlyOnce plays the rules of the package comment, with this
// package's helpers, between a model site and a model central whose
// connection is cut at random points (frames in flight are lost), while
// the site records events and central makes revisions, compacts its
// deltas, and both sides pipeline. In the end central has every event
// once and in order, and the site holds central's latest desired state.
func TestExactlyOnce(t *testing.T) {
	parallel(t)
	var fulls, duplicates atomic.Int64
	t.Cleanup(func() { // the model went where it should
		t.Logf("%d full snapshots sent, %d duplicate events dropped", fulls.Load(), duplicates.Load())
		if fulls.Load() == 0 || duplicates.Load() == 0 {
			t.Errorf("the model never sent a snapshot or a duplicate")
		}
	})
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			parallel(t)
			rng := rand.New(rand.NewPCG(seed, 0))
			s := &simSite{objects: map[string]string{}}
			c := &simCentral{fulls: &fulls, duplicates: &duplicates}
			for range 30 {
				s.connect(t, c, rng, rng.IntN(40))
			}
			s.connect(t, c, rng, -1) // no cut: everything is delivered
			if len(c.stored) != len(s.events) {
				t.Fatalf("central stored %d events, the site recorded %d", len(c.stored), len(s.events))
			}
			for i, e := range c.stored {
				if e.Seq != uint64(i+1) || string(e.Data) != string(s.events[i].Data) {
					t.Fatalf("central's event %d is %d %s, want %d %s", i, e.Seq, e.Data, i+1, s.events[i].Data)
				}
			}
			if s.applied != c.latest() || s.acked != uint64(len(s.events)) {
				t.Errorf("site applied %d (central's latest %d), acked %d of %d", s.applied, c.latest(), s.acked, len(s.events))
			}
			if d := diff(c.stateAt(c.latest()), s.objects); d != "" {
				t.Errorf("site's objects (-central +site):\n%s", d)
			}
		})
	}
}

type simCentral struct {
	revisions [][]Change // revisions[r-1] are the changes of delta r
	compacted uint64     // deltas up to it are gone
	stored    []Event
	sent      uint64 // revision sent last on this connection
	welcomed  bool
	// lingering are frames of an older connection of the site that
	// central still reads (the old leader's), interleaved with the new.
	lingering [][]byte

	fulls, duplicates *atomic.Int64
}

func (c *simCentral) latest() uint64 { return uint64(len(c.revisions)) }

func (c *simCentral) stateAt(rev uint64) map[string]string {
	state := map[string]string{}
	for _, changes := range c.revisions[:rev] {
		for _, ch := range changes {
			if ch.Deleted {
				delete(state, ch.Key)
			} else {
				state[ch.Key] = string(ch.Object)
			}
		}
	}
	return state
}

// revise makes a new revision: puts and deletes of a few keys.
func (c *simCentral) revise(rng *rand.Rand) {
	state := c.stateAt(c.latest())
	var changes []Change
	for _, k := range rng.Perm(8)[:1+rng.IntN(3)] {
		key := fmt.Sprintf("o%d", k)
		if _, ok := state[key]; ok && rng.IntN(3) == 0 {
			changes = append(changes, Change{Kind: "order", Key: key, Deleted: true})
		} else {
			changes = append(changes, Change{Kind: "order", Key: key, Object: json.RawMessage(fmt.Sprintf(`{"rev":%d}`, c.latest()+1))})
		}
	}
	c.revisions = append(c.revisions, changes)
}

// send queues the revisions after c.sent: deltas, or a full snapshot of
// the latest if the deltas are compacted.
func (c *simCentral) send(t *testing.T, q *[][]byte) {
	for c.sent < c.latest() {
		var parts []*Desired
		var err error
		if c.sent < c.compacted {
			state := c.stateAt(c.latest())
			var puts []Change
			for _, k := range slices.Sorted(maps.Keys(state)) {
				puts = append(puts, Change{Kind: "order", Key: k, Object: json.RawMessage(state[k])})
			}
			c.sent = c.latest()
			parts, err = SplitDesired(c.sent, true, puts)
			c.fulls.Add(1)
		} else {
			c.sent++
			parts, err = SplitDesired(c.sent, false, c.revisions[c.sent-1])
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range parts {
			*q = append(*q, encode(t, d))
		}
	}
}

func (c *simCentral) handle(t *testing.T, frame []byte, q *[][]byte) {
	m := decode(t, frame, Site)
	switch m := m.(type) {
	case *Hello:
		v, err := Negotiate(Supported, m.Versions)
		if err == nil {
			err = m.CheckHistory(uint64(len(c.stored)))
		}
		if err != nil {
			t.Fatalf("central refuses %v: %v", m, err)
		}
		next := m.AppliedRevision + 1
		if m.AppliedRevision < c.compacted {
			next = c.latest()
		}
		c.sent, c.welcomed = m.AppliedRevision, true
		*q = append(*q, encode(t, &Welcome{Version: v, StoredSeq: uint64(len(c.stored)), NextRevision: max(next, 1), HeartbeatMillis: 1000}))
		c.send(t, q)
	case *Events:
		fresh, err := m.Unstored(uint64(len(c.stored)))
		if err != nil {
			t.Fatal(err)
		}
		c.duplicates.Add(int64(len(m.Events) - len(fresh)))
		c.stored = append(c.stored, fresh...)
		*q = append(*q, encode(t, &EventsAck{Seq: uint64(len(c.stored))}))
	case *DesiredAck:
		if m.Revision > c.sent {
			t.Fatalf("site acks revision %d, central sent up to %d", m.Revision, c.sent)
		}
	}
}

type simSite struct {
	applied  uint64
	objects  map[string]string
	events   []Event
	acked    uint64
	sent     uint64 // the last event sent on this connection
	welcomed bool
	recv     *DesiredReceiver
	snapshot map[string]bool // keys put by the full snapshot arriving
}

func (s *simSite) record(rng *rand.Rand) {
	seq := uint64(len(s.events) + 1)
	s.events = append(s.events, Event{Seq: seq, Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"r":%d}`, seq, rng.IntN(100)))})
}

func (s *simSite) send(t *testing.T, q *[][]byte) {
	batches, err := SplitEvents(s.events[s.sent:])
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		*q = append(*q, encode(t, b))
	}
	s.sent = uint64(len(s.events))
}

func (s *simSite) handle(t *testing.T, frame []byte, q *[][]byte, h *Hello) {
	switch m := decode(t, frame, Central).(type) {
	case *Welcome:
		if err := m.Answers(h); err != nil {
			t.Fatal(err)
		}
		s.acked, s.sent, s.welcomed = m.StoredSeq, m.StoredSeq, true
		s.send(t, q)
	case *EventsAck:
		if m.Seq > s.sent {
			t.Fatalf("central acks %d, the site sent up to %d", m.Seq, s.sent)
		}
		s.acked = max(s.acked, m.Seq)
	case *Desired:
		complete, err := s.recv.Accept(m)
		if err != nil {
			t.Fatal(err)
		}
		if m.Full && m.Part == 0 {
			s.snapshot = map[string]bool{}
		}
		for _, ch := range m.Changes { // part by part, as it arrives
			if ch.Deleted {
				delete(s.objects, ch.Key)
			} else {
				s.objects[ch.Key] = string(ch.Object)
				if m.Full {
					s.snapshot[ch.Key] = true
				}
			}
		}
		if complete {
			if m.Full {
				maps.DeleteFunc(s.objects, func(k, _ string) bool { return !s.snapshot[k] })
			}
			s.applied = m.Revision
			*q = append(*q, encode(t, &DesiredAck{Revision: m.Revision}))
		}
	}
}

// connect runs one connection, cut after cut deliveries (never if cut <
// 0), with events and revisions made on both sides meanwhile.
func (s *simSite) connect(t *testing.T, c *simCentral, rng *rand.Rand, cut int) {
	s.welcomed, c.welcomed = false, false
	s.recv = NewDesiredReceiver(s.applied)
	h := &Hello{Site: "s1", Credential: "tok", Versions: Supported, AppliedRevision: s.applied, AckedSeq: s.acked, LastSeq: uint64(len(s.events))}
	toCentral, toSite := [][]byte{encode(t, h)}, [][]byte(nil)
	for n := 0; cut < 0 || n < cut; n++ {
		if cut >= 0 { // the world goes on while the link is up
			switch rng.IntN(6) {
			case 0:
				s.record(rng)
				if s.welcomed {
					s.send(t, &toCentral)
				}
			case 1:
				c.revise(rng)
				if c.welcomed {
					c.send(t, &toSite)
				}
			case 2:
				if rng.IntN(4) == 0 {
					c.compacted = c.latest()
				}
			}
		}
		switch {
		case len(c.lingering) > 0 && rng.IntN(3) == 0:
			c.linger(t)
		case len(toCentral) > 0 && (len(toSite) == 0 || rng.IntN(2) == 0):
			c.handle(t, toCentral[0], &toSite)
			toCentral = toCentral[1:]
		case len(toSite) > 0:
			s.handle(t, toSite[0], &toCentral, h)
			toSite = toSite[1:]
		default:
			if cut < 0 {
				return
			}
		}
	}
	// Cut: frames in flight are lost, or still read by central, which
	// has not noticed; the world goes on offline.
	c.lingering = nil
	if rng.IntN(2) == 0 {
		c.lingering = toCentral
	}
	for range rng.IntN(5) {
		s.record(rng)
		c.revise(rng)
	}
	if rng.IntN(3) == 0 {
		c.compacted = c.latest()
	}
}

// linger has central read a frame of the site's older connection, whose
// answers are lost: its batches overlap the new connection's.
func (c *simCentral) linger(t *testing.T) {
	frame := c.lingering[0]
	c.lingering = c.lingering[1:]
	switch m := decode(t, frame, Site).(type) {
	case *Events:
		fresh, err := m.Unstored(uint64(len(c.stored)))
		if err != nil {
			t.Fatal(err)
		}
		c.duplicates.Add(int64(len(m.Events) - len(fresh)))
		c.stored = append(c.stored, fresh...)
	case *DesiredAck:
		if m.Revision > c.latest() {
			t.Fatalf("site acks revision %d, central has up to %d", m.Revision, c.latest())
		}
	}
}

func encode(t *testing.T, m Message) []byte {
	t.Helper()
	frame, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func decode(t *testing.T, frame []byte, from Sender) Message {
	t.Helper()
	m, err := Decode(frame)
	if err == nil {
		err = CheckSender(m, from)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}
