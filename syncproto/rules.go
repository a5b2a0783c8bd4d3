package syncproto

import "fmt"

// Sender is a side of the connection.
type Sender int

const (
	Site Sender = iota + 1
	Central
)

func (s Sender) String() string {
	switch s {
	case Site:
		return "site"
	case Central:
		return "central"
	}
	return fmt.Sprintf("Sender(%d)", int(s))
}

// CheckSender checks that from may send m: a message from the wrong side
// is bad_message.
func CheckSender(m Message, from Sender) error {
	var ok bool
	switch m.(type) {
	case *Hello, *DesiredAck, *Events, *Spans:
		ok = from == Site
	case *Welcome, *Desired, *EventsAck, *SpansAck:
		ok = from == Central
	case *Heartbeat, *Error:
		ok = from == Site || from == Central
	}
	if !ok {
		return invalid(m.Type(), "", "the %s does not send %s messages", from, m.Type())
	}
	return nil
}

// frameHeadroom is what a frame holds besides the items Split packs
// (envelope, header fields, brackets), with room to spare.
const frameHeadroom = 1024

// SplitEvents cuts the site's events, numbered densely from events[0],
// into batches of at most MaxEventsPerBatch events and MaxFrameSize bytes
// each, in order. It fails on events that are not dense or not valid
// (data over MaxEventSize, or not a JSON object).
func SplitEvents(events []Event) ([]*Events, error) {
	var out []*Events
	var cur *Events
	size := 0
	for i, e := range events {
		if i > 0 && e.Seq != events[i-1].Seq+1 {
			return nil, invalid(TypeEvents, fmt.Sprintf("events[%d].seq", i), "is %d, want %d: events are dense and increasing", e.Seq, events[i-1].Seq+1)
		}
		b, err := marshal(e)
		if err != nil {
			return nil, invalid(TypeEvents, fmt.Sprintf("events[%d].data", i), "is not valid JSON")
		}
		if cur == nil || len(cur.Events) == MaxEventsPerBatch || size+len(b)+1 > MaxFrameSize-frameHeadroom {
			cur = &Events{First: e.Seq}
			out = append(out, cur)
			size = 0
		}
		cur.Events = append(cur.Events, e)
		cur.Last = e.Seq
		size += len(b) + 1
	}
	for _, b := range out {
		if err := b.Validate(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Unstored is central's rule for a batch: given the highest sequence it
// has stored for the site, it returns the batch's events it has not
// stored yet, which it stores in order (in one transaction that also
// records the new highest, as it checks stored), then acknowledges. A
// batch that starts past stored+1 would leave a gap: an error
// (bad_message), except after central lost events (see the package
// comment).
func (b *Events) Unstored(stored uint64) ([]Event, error) {
	switch {
	case b.First > stored+1:
		return nil, invalid(TypeEvents, "first", "is %d, but central has stored up to %d: events %d to %d are missing", b.First, stored, stored+1, b.First-1)
	case b.Last <= stored:
		return nil, nil
	}
	return b.Events[stored+1-b.First:], nil
}

// SplitDesired cuts one revision into desired messages of at most
// MaxFrameSize bytes each: parts 0, 1, ... in order, each but the last
// with More set. A revision with no changes is one message. It fails on
// changes that are not valid (including a delete in a full snapshot).
func SplitDesired(revision uint64, full bool, changes []Change) ([]*Desired, error) {
	cur := &Desired{Revision: revision, Full: full, Changes: []Change{}}
	out := []*Desired{cur}
	size := 0
	for i, c := range changes {
		b, err := marshal(c)
		if err != nil {
			return nil, invalid(TypeDesired, fmt.Sprintf("changes[%d].object", i), "is not valid JSON")
		}
		if len(cur.Changes) > 0 && size+len(b)+1 > MaxFrameSize-frameHeadroom {
			cur.More = true
			cur = &Desired{Revision: revision, Full: full, Part: cur.Part + 1, Changes: []Change{}}
			out = append(out, cur)
			size = 0
		}
		cur.Changes = append(cur.Changes, c)
		size += len(b) + 1
	}
	seen := make(map[[2]string]bool, len(changes))
	for i, c := range changes {
		k := [2]string{c.Kind, c.Key}
		if seen[k] {
			return nil, invalid(TypeDesired, fmt.Sprintf("changes[%d].key", i), "%s %q is named twice", c.Kind, c.Key)
		}
		seen[k] = true
	}
	for _, d := range out {
		if err := d.Validate(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DesiredReceiver is the site's check of the desired messages of one
// connection: that each revision follows the one applied before it (or
// is a full snapshot past it) and arrives in order, part after part.
type DesiredReceiver struct {
	applied uint64
	// Of the revision whose parts are arriving, if open.
	open bool
	rev  uint64
	full bool
	next int
}

// NewDesiredReceiver starts a connection's check from the revision the
// site has applied (its hello's AppliedRevision).
func NewDesiredReceiver(applied uint64) *DesiredReceiver {
	return &DesiredReceiver{applied: applied}
}

// Applied is the last revision complete.
func (r *DesiredReceiver) Applied() uint64 { return r.applied }

// Accept checks that d may come next, and reports whether it completes
// its revision: the site applies d's changes (part by part, or all parts
// at once) and, once the revision is complete and applied, acknowledges
// it. Accept counts a completed revision as applied: if applying fails,
// the site closes the connection. An error is bad_message.
func (r *DesiredReceiver) Accept(d *Desired) (complete bool, err error) {
	if r.open {
		switch {
		case d.Revision != r.rev:
			return false, invalid(TypeDesired, "revision", "is %d, but part %d of revision %d is due", d.Revision, r.next, r.rev)
		case d.Part != r.next:
			return false, invalid(TypeDesired, "part", "is %d, want %d of revision %d", d.Part, r.next, r.rev)
		case d.Full != r.full:
			return false, invalid(TypeDesired, "full", "is %t, unlike part 0 of revision %d", d.Full, r.rev)
		}
	} else {
		switch {
		case d.Part != 0:
			return false, invalid(TypeDesired, "part", "is %d, but revision %d starts here: want 0", d.Part, d.Revision)
		case d.Full && d.Revision <= r.applied:
			return false, invalid(TypeDesired, "revision", "is %d: a full snapshot must be past the applied revision %d", d.Revision, r.applied)
		case !d.Full && d.Revision != r.applied+1:
			return false, invalid(TypeDesired, "revision", "is %d, want %d: a delta follows the applied revision %d", d.Revision, r.applied+1, r.applied)
		}
		r.open, r.rev, r.full = true, d.Revision, d.Full
	}
	if d.More {
		r.next = d.Part + 1
		return false, nil
	}
	r.open, r.next, r.applied = false, 0, d.Revision
	return true, nil
}
