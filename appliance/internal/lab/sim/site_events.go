package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost/syncproto"
)

// Event is an event a simulated site records, as an appliance records
// one (its store.Event: kind, machine, message, fields).
type Event struct {
	Kind    string
	Machine string
	Message string
	Fields  map[string]string
}

// eventBatch bounds the events of one batch sent.
const eventBatch = 500

// eventLog is a site's events not yet acknowledged by central, from
// seq first on, and the last one sent.
type eventLog struct {
	mu      sync.Mutex
	pending []syncproto.Event // unacknowledged, dense from pending[0].Seq
	next    uint64            // the sequence of the next event recorded
	sent    uint64            // the highest sequence sent
	ackedTo uint64            // the highest sequence central acknowledged
	wake    chan struct{}
	answer  atomic.Bool
}

func (l *eventLog) init(stored uint64) {
	l.next, l.sent, l.ackedTo = stored+1, stored, stored
	l.wake = make(chan struct{}, 1)
}

func (l *eventLog) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// acked forgets the events central acknowledged up to seq, once: an
// acknowledgement of what was acknowledged already changes nothing.
func (l *eventLog) acked(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.ackedTo {
		return
	}
	l.ackedTo = seq
	n := 0
	for n < len(l.pending) && l.pending[n].Seq <= seq {
		n++
	}
	l.pending = l.pending[n:]
	l.poke()
}

// Acked is the highest event sequence central has acknowledged.
func (s *Site) Acked() uint64 {
	s.ev.mu.Lock()
	defer s.ev.mu.Unlock()
	return s.ev.ackedTo
}

// AnswerOrders makes the site answer each order it receives as a real
// site would, with events: a power order's job created, running and
// succeeded, and the order created and succeeded; any other order
// created and succeeded.
func (s *Site) AnswerOrders() { s.ev.answer.Store(true) }

// Record records events, each at the next sequence; Run sends them.
func (s *Site) Record(events ...Event) {
	now := time.Now().UTC()
	s.ev.mu.Lock()
	defer s.ev.mu.Unlock()
	for _, e := range events {
		seq := s.ev.next
		s.ev.next++
		data, _ := json.Marshal(map[string]any{"seq": seq, "time": now, "machine_id": e.Machine, "kind": e.Kind,
			"message": e.Message, "fields": e.Fields, "by": "site"})
		s.ev.pending = append(s.ev.pending, syncproto.Event{Seq: seq, Data: data})
	}
	s.ev.poke()
}

// sendEvents sends the events recorded, a batch at a time, each batch
// once its predecessor is acknowledged, until ctx ends or a write fails.
func (s *Site) sendEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ev.wake:
		}
		s.ev.mu.Lock()
		var batch []syncproto.Event
		if s.ev.sent == s.ev.ackedTo {
			for _, e := range s.ev.pending {
				if len(batch) == eventBatch {
					break
				}
				batch = append(batch, e)
			}
		}
		if len(batch) > 0 {
			s.ev.sent = batch[len(batch)-1].Seq
		}
		s.ev.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		m := &syncproto.Events{First: batch[0].Seq, Last: batch[len(batch)-1].Seq, Events: batch}
		if err := writeMsg(ctx, s.conn, m); err != nil {
			return
		}
	}
}

// answerOrder records the events a real site's order makes, from its
// creation to its success.
func (s *Site) answerOrder(c syncproto.Change) {
	var o syncproto.Order
	if json.Unmarshal(c.Object, &o) != nil {
		return
	}
	f := func(kv ...string) map[string]string {
		m := map[string]string{"order": o.ID, "action": o.Action}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	created := Event{Kind: "order.created", Machine: o.MachineID, Message: fmt.Sprintf("order %s: %s machine %s", o.ID, o.Action, o.MachineID), Fields: f()}
	done := Event{Kind: "order.succeeded", Machine: o.MachineID, Message: fmt.Sprintf("order %s succeeded", o.ID), Fields: f()}
	switch o.Action {
	case syncproto.OrderPowerOn, syncproto.OrderPowerOff, syncproto.OrderPowerCycle:
		job, action := o.ID+"-power", o.Action
		s.Record(
			Event{Kind: "bmc.job.created", Machine: o.MachineID, Message: action + " queued", Fields: f("job", job)},
			created,
			Event{Kind: "bmc.job.running", Machine: o.MachineID, Message: action + " running (attempt 1)", Fields: f("job", job)},
			Event{Kind: "bmc.job.succeeded", Machine: o.MachineID, Message: action + " succeeded", Fields: f("job", job)},
			done)
	default:
		s.Record(created, done)
	}
}
