package sim

import (
	"context"
	"fmt"

	"github.com/outposthq/outpost/syncproto"
)

// SendEvents sends the site's events from seq first on, in batches of at
// most syncproto.MaxEventsPerBatch, each the JSON of one of the site's
// events, and returns once central has acknowledged the last. Use it
// instead of Run: it reads the connection itself (acknowledging nothing
// central sends meanwhile but the events it waits for).
func (s *Site) SendEvents(ctx context.Context, first uint64, events [][]byte) error {
	for len(events) > 0 {
		n := min(len(events), syncproto.MaxEventsPerBatch)
		b := &syncproto.Events{First: first, Last: first + uint64(n) - 1}
		for i, data := range events[:n] {
			b.Events = append(b.Events, syncproto.Event{Seq: first + uint64(i), Data: data})
		}
		if err := writeMsg(ctx, s.conn, b); err != nil {
			return fmt.Errorf("%s: events %d-%d: %w", s.ID, b.First, b.Last, err)
		}
		for acked := false; !acked; {
			m, err := readMsg(ctx, s.conn)
			if err != nil {
				return fmt.Errorf("%s: events %d-%d: %w", s.ID, b.First, b.Last, err)
			}
			switch m := m.(type) {
			case *syncproto.EventsAck:
				acked = m.Seq >= b.Last
			case *syncproto.Error:
				return fmt.Errorf("%s: central sent error %s: %s", s.ID, m.Code, m.Message)
			}
		}
		first, events = first+uint64(n), events[n:]
	}
	return nil
}
