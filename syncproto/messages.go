package syncproto

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Message types: the "type" of a frame's envelope.
const (
	TypeHello      = "hello"       // site → central, first
	TypeWelcome    = "welcome"     // central → site, the answer to hello
	TypeDesired    = "desired"     // central → site
	TypeDesiredAck = "desired_ack" // site → central
	TypeEvents     = "events"      // site → central
	TypeEventsAck  = "events_ack"  // central → site
	TypeHeartbeat  = "heartbeat"   // both ways
	TypeSpans      = "spans"       // site → central, version 2
	TypeSpansAck   = "spans_ack"   // central → site, version 2
	TypeError      = "error"       // both ways, then the sender closes
)

// Message is one of *Hello, *Welcome, *Desired, *DesiredAck, *Events,
// *EventsAck, *Spans, *SpansAck, *Heartbeat and *Error: what Decode returns and Encode
// takes. Switch on its dynamic type.
type Message interface {
	// Type is the message's type on the wire (TypeHello...).
	Type() string
	// Validate checks the message on its own: the rules that need no
	// state of the connection. The error is an *Error with
	// CodeBadMessage whose Field names what is wrong.
	Validate() error
	isMessage()
}

// Hello opens a connection: the site says who it is and where it stands.
type Hello struct {
	// Site is the site's id, as central knows it.
	Site string `json:"site"`
	// Credential is the site's bearer token.
	Credential Credential `json:"credential"`
	// Versions are the protocol versions the site speaks.
	Versions VersionRange `json:"versions"`
	// AppliedRevision is the last desired-state revision the site has
	// applied (0: none).
	AppliedRevision uint64 `json:"applied_revision"`
	// AckedSeq is the highest event sequence central has acknowledged,
	// as far as the site knows (0: none). Central answers with what it
	// has actually stored (Welcome.StoredSeq), which is what counts.
	AckedSeq uint64 `json:"acked_seq"`
	// LastSeq is the sequence of the site's newest event (0: none).
	// Central checks that it has not stored more than that (see
	// CheckHistory).
	LastSeq uint64 `json:"last_seq"`
	// Report is what the site says of itself (optional, 2026-12-07).
	Report *Report `json:"report,omitempty"`
}

func (*Hello) Type() string { return TypeHello }
func (*Hello) isMessage()   {}

func (h *Hello) Validate() error {
	if err := validName(TypeHello, "site", h.Site); err != nil {
		return err
	}
	switch {
	case h.Credential == "":
		return invalid(TypeHello, "credential", "is required")
	case len(h.Credential) > MaxCredentialSize:
		return invalid(TypeHello, "credential", "is %d bytes, more than the limit of %d", len(h.Credential), MaxCredentialSize)
	}
	if err := h.Versions.validate(TypeHello, "versions"); err != nil {
		return err
	}
	if h.AckedSeq > h.LastSeq {
		return invalid(TypeHello, "acked_seq", "is %d, past last_seq %d", h.AckedSeq, h.LastSeq)
	}
	return h.Report.validate(TypeHello)
}

// LogValue logs the hello without its credential.
func (h *Hello) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("site", h.Site),
		slog.String("versions", h.Versions.String()),
		slog.Uint64("applied_revision", h.AppliedRevision),
		slog.Uint64("acked_seq", h.AckedSeq),
		slog.Uint64("last_seq", h.LastSeq))
}

// CheckHistory is central's check, before its welcome, that the site's
// events and its own agree: central has stored events up to stored for
// the site, so the site must have recorded at least as many. If it has
// not, its history went back (an appliance rebuilt, or restored from an
// old backup) and the sequences it will send again were used before:
// central would drop them as duplicates. It answers the CodeConflict
// error this returns, and an operator resets the site's events at
// central.
func (h *Hello) CheckHistory(stored uint64) error {
	if stored <= h.LastSeq {
		return nil
	}
	return Errorf(CodeConflict,
		"site %s has recorded events up to %d, but central has stored events up to %d from it: "+
			"the site's history went back (a rebuilt or restored appliance); reset the site's events at central to resume",
		h.Site, h.LastSeq, stored)
}

// Welcome is central's answer to a hello: the connection is open.
type Welcome struct {
	// Version is the protocol version of the connection, chosen by
	// Negotiate.
	Version int `json:"version"`
	// StoredSeq is the highest event sequence central has stored for the
	// site (0: none). The site sends its events from StoredSeq+1 and may
	// forget those up to it.
	StoredSeq uint64 `json:"stored_seq"`
	// NextRevision is the revision of the first desired message central
	// will send: AppliedRevision+1 when it sends deltas from there (once
	// there is a change to send), else the revision of a full snapshot.
	NextRevision uint64 `json:"next_revision"`
	// HeartbeatMillis is the heartbeat interval of the connection, in
	// milliseconds, for both sides.
	HeartbeatMillis int64 `json:"heartbeat_ms"`
}

func (*Welcome) Type() string { return TypeWelcome }
func (*Welcome) isMessage()   {}

func (w *Welcome) Validate() error {
	switch {
	case w.Version < 1:
		return invalid(TypeWelcome, "version", "is %d, want at least 1", w.Version)
	case w.NextRevision == 0:
		return invalid(TypeWelcome, "next_revision", "is required")
	case w.HeartbeatInterval() < MinHeartbeat || w.HeartbeatInterval() > MaxHeartbeat:
		return invalid(TypeWelcome, "heartbeat_ms", "is %d, want %d to %d", w.HeartbeatMillis, MinHeartbeat.Milliseconds(), MaxHeartbeat.Milliseconds())
	}
	return nil
}

// HeartbeatInterval is HeartbeatMillis as a duration.
func (w *Welcome) HeartbeatInterval() time.Duration {
	if w.HeartbeatMillis > math.MaxInt64/int64(time.Millisecond) || w.HeartbeatMillis < 0 {
		return -1
	}
	return time.Duration(w.HeartbeatMillis) * time.Millisecond
}

// Answers is the site's check that w answers its hello h: a version h
// offered, a next revision past the one it has applied, and no more
// events stored than it has recorded.
func (w *Welcome) Answers(h *Hello) error {
	switch {
	case !h.Versions.Contains(w.Version):
		return invalid(TypeWelcome, "version", "is %d, which the site does not speak (it speaks %s)", w.Version, h.Versions)
	case w.NextRevision <= h.AppliedRevision:
		return invalid(TypeWelcome, "next_revision", "is %d, but the site has applied revision %d", w.NextRevision, h.AppliedRevision)
	case w.StoredSeq > h.LastSeq:
		return invalid(TypeWelcome, "stored_seq", "is %d, past the site's last event %d", w.StoredSeq, h.LastSeq)
	}
	return nil
}

// Desired carries one revision of the site's desired state, or one part
// of it (see the package comment for parts and the rules of revisions).
type Desired struct {
	// Revision numbers the site's desired state, from 1, densely.
	Revision uint64 `json:"revision"`
	// Full says the revision is a full snapshot: it replaces everything
	// central manages at the site. It has no deletes.
	Full bool `json:"full,omitempty"`
	// Part numbers the messages of one revision from 0, and More says
	// another part of the revision follows this one.
	Part int  `json:"part,omitempty"`
	More bool `json:"more,omitempty"`
	// Changes are applied in order. A revision names each (kind, key)
	// at most once.
	Changes []Change `json:"changes"`
}

// Change puts or deletes one object of desired state.
type Change struct {
	// Kind is the object's kind ("order", "machine", "image",
	// "template"...), in the appliance's names.
	Kind string `json:"kind"`
	// Key is the object's key within its kind (its id or name).
	Key string `json:"key"`
	// Object is the whole object, a JSON object, for a put.
	Object json.RawMessage `json:"object,omitempty"`
	// Deleted says the object is deleted (and Object is absent).
	Deleted bool `json:"deleted,omitempty"`
}

func (*Desired) Type() string { return TypeDesired }
func (*Desired) isMessage()   {}

func (d *Desired) Validate() error {
	switch {
	case d.Revision == 0:
		return invalid(TypeDesired, "revision", "is required")
	case d.Part < 0:
		return invalid(TypeDesired, "part", "is %d, want at least 0", d.Part)
	}
	type key struct{ kind, key string }
	seen := make(map[key]bool, len(d.Changes))
	for i, c := range d.Changes {
		field := fmt.Sprintf("changes[%d]", i)
		if err := c.validate(field); err != nil {
			return err
		}
		if c.Deleted && d.Full {
			return invalid(TypeDesired, field+".deleted", "a full snapshot has no deletes")
		}
		if seen[key{c.Kind, c.Key}] {
			return invalid(TypeDesired, field+".key", "%s %q is named twice", c.Kind, c.Key)
		}
		seen[key{c.Kind, c.Key}] = true
	}
	return nil
}

func (c *Change) validate(field string) error {
	if err := validToken(TypeDesired, field+".kind", c.Kind); err != nil {
		return err
	}
	if err := validKey(TypeDesired, field+".key", c.Key); err != nil {
		return err
	}
	if c.Deleted {
		if c.Object != nil {
			return invalid(TypeDesired, field+".object", "a delete has no object")
		}
		return nil
	}
	if c.Object == nil {
		return invalid(TypeDesired, field+".object", "is required unless deleted")
	}
	return validObject(TypeDesired, field+".object", c.Object, MaxObjectSize)
}

// DesiredAck acknowledges a revision: the site has applied it.
type DesiredAck struct {
	Revision uint64 `json:"revision"`
}

func (*DesiredAck) Type() string { return TypeDesiredAck }
func (*DesiredAck) isMessage()   {}

func (a *DesiredAck) Validate() error {
	if a.Revision == 0 {
		return invalid(TypeDesiredAck, "revision", "is required")
	}
	return nil
}

// Events is a batch of the site's events: Events[i].Seq is First+i, and
// Last is the last one's.
type Events struct {
	First  uint64  `json:"first"`
	Last   uint64  `json:"last"`
	Events []Event `json:"events"`
}

// Event is one event of the site, numbered by Seq, densely from 1. Data
// is the event as the appliance records it, a JSON object this package
// does not look into.
type Event struct {
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data"`
}

func (*Events) Type() string { return TypeEvents }
func (*Events) isMessage()   {}

func (b *Events) Validate() error {
	n := len(b.Events)
	switch {
	case n == 0:
		return invalid(TypeEvents, "events", "is empty")
	case n > MaxEventsPerBatch:
		return invalid(TypeEvents, "events", "holds %d events, more than the limit of %d", n, MaxEventsPerBatch)
	case b.First == 0:
		return invalid(TypeEvents, "first", "is required")
	case b.First > math.MaxUint64-uint64(n-1):
		return invalid(TypeEvents, "first", "is %d: %d events would overflow the sequence", b.First, n)
	}
	for i, e := range b.Events {
		field := fmt.Sprintf("events[%d]", i)
		if want := b.First + uint64(i); e.Seq != want {
			return invalid(TypeEvents, field+".seq", "is %d, want %d: a batch's sequences are dense and increasing from first", e.Seq, want)
		}
		if e.Data == nil {
			return invalid(TypeEvents, field+".data", "is required")
		}
		if err := validObject(TypeEvents, field+".data", e.Data, MaxEventSize); err != nil {
			return err
		}
	}
	if want := b.Events[n-1].Seq; b.Last != want {
		return invalid(TypeEvents, "last", "is %d, want %d, the last event's sequence", b.Last, want)
	}
	return nil
}

// EventsAck acknowledges events: central has durably stored every event
// of the site up to Seq.
type EventsAck struct {
	Seq uint64 `json:"seq"`
}

func (*EventsAck) Type() string { return TypeEventsAck }
func (*EventsAck) isMessage()   {}

func (a *EventsAck) Validate() error {
	if a.Seq == 0 {
		return invalid(TypeEventsAck, "seq", "is required")
	}
	return nil
}

// Heartbeat says the sender is alive, at Time by its clock (for display
// and diagnosis only: no rule depends on the clocks agreeing).
type Heartbeat struct {
	Time time.Time `json:"time"`
	// Report is what the site says of itself (optional, 2026-12-07; the
	// site's heartbeats only).
	Report *Report `json:"report,omitempty"`
}

func (*Heartbeat) Type() string { return TypeHeartbeat }
func (*Heartbeat) isMessage()   {}

func (h *Heartbeat) Validate() error {
	if h.Time.IsZero() {
		return invalid(TypeHeartbeat, "time", "is required")
	}
	return h.Report.validate(TypeHeartbeat)
}

// Spans is a batch of the spans a site recorded (version 2): each a
// JSON object this package does not look into (the tracing package's
// span; central validates each). Unlike events, spans are not numbered
// by the site's store and may arrive twice (after a lost spans_ack):
// central keeps a span once, by its trace and span id. Batch numbers the
// message for its acknowledgement.
type Spans struct {
	Batch uint64            `json:"batch"`
	Spans []json.RawMessage `json:"spans"`
}

func (*Spans) Type() string { return TypeSpans }
func (*Spans) isMessage()   {}

func (b *Spans) Validate() error {
	switch n := len(b.Spans); {
	case b.Batch == 0:
		return invalid(TypeSpans, "batch", "is required")
	case n == 0:
		return invalid(TypeSpans, "spans", "is empty")
	case n > MaxSpansPerBatch:
		return invalid(TypeSpans, "spans", "holds %d spans, more than the limit of %d", n, MaxSpansPerBatch)
	}
	for i, sp := range b.Spans {
		if err := validObject(TypeSpans, fmt.Sprintf("spans[%d]", i), sp, MaxSpanSize); err != nil {
			return err
		}
	}
	return nil
}

// SpansAck acknowledges a spans message: central has durably kept its
// spans.
type SpansAck struct {
	Batch uint64 `json:"batch"`
}

func (*SpansAck) Type() string { return TypeSpansAck }
func (*SpansAck) isMessage()   {}

func (a *SpansAck) Validate() error {
	if a.Batch == 0 {
		return invalid(TypeSpansAck, "batch", "is required")
	}
	return nil
}
