// Package syncproto is the wire protocol between central and the
// appliances: desired state flows down by revision, events flow up by
// sequence number, each acknowledged, over one websocket per site.
//
// It is shared by both sides and depends on neither, nor on anything but
// the standard library. It holds the messages, their encoding, the limits
// and the rules; the websocket itself (github.com/coder/websocket on both
// sides) is the caller's. This comment is the specification: either side
// can be written from it alone.
//
// # Connection
//
// A site's Raft leader, and only it, opens a websocket to central at Path
// (wss:// in production), retrying with backoff and jitter while it cannot.
// Sites connect out, so central needs no route to them. Central keeps one
// session per site: a newer connection of a site replaces the older one,
// which central ends with error "replaced" (after a leader change the old
// leader's connection may linger). A site's node that stops being the
// leader closes its connection.
//
// Each message is one websocket text frame holding one JSON object, an
// envelope with the message's type and its body:
//
//	{"type": "events", "body": {"first": 8, "last": 9, "events": [...]}}
//
// A frame is at most MaxFrameSize bytes: both sides set their websocket
// read limit to it. Encode builds a frame from a Message (one of *Hello,
// *Welcome, *Desired, *DesiredAck, *Events, *EventsAck, *Heartbeat,
// *Error), after validating it; Decode parses a frame and validates the
// message. Fields a receiver does not know are ignored, so a later
// version may add optional fields; a type it does not know is an error
// (bad_message), so a new type takes a new version.
//
// # Messages
//
//	hello        site → central  site, credential, versions {min, max},
//	                             applied_revision, acked_seq, last_seq,
//	                             report (optional)
//	welcome      central → site  version, stored_seq, next_revision, heartbeat_ms
//	desired      central → site  revision, full, part, more,
//	                             changes [{kind, key, object | deleted: true}]
//	desired_ack  site → central  revision
//	events       site → central  first, last, events [{seq, data}]
//	events_ack   central → site  seq
//	heartbeat    both            time, report (optional, the site's)
//	error        both            code, message, field
//
// The types' comments say what each field means. Each message validates
// itself (Validate, which Encode and Decode call): required fields,
// limits, a batch's sequences dense from first to last, a snapshot
// without deletes, no (kind, key) twice in a message. A message sent by
// the wrong side (CheckSender) is bad_message too.
//
// # Handshake and versions
//
// The site sends hello first, and nothing else until it has the answer;
// central sends nothing before a hello. Either side gives the other
// HandshakeTimeout. A first message other than hello, or a second hello,
// is bad_message. Central answers a hello with an error, and closes, if:
//
//   - the site is unknown or the credential wrong: unauthorized, the same
//     answer for both, the credential compared in constant time, nothing
//     changed;
//   - Negotiate finds no version in both central's range (Supported) and
//     the hello's versions: incompatible_version, whose message names both
//     ranges ("central speaks version 1, the site speaks versions 2 to 3");
//   - central has stored more events from the site than its last_seq:
//     conflict (Hello.CheckHistory).
//
// Else it answers welcome with the version the connection speaks from
// then on (the newest in both ranges), the highest event sequence it has
// stored for the site, the revision it will send next and the heartbeat
// interval of the connection. The site checks the welcome (Answers). The
// hello, welcome and error messages are frozen: every version decodes them
// as version 1 defines them (a version may add optional fields to them,
// never change one), so that peers of any versions can agree on one or
// say clearly that they cannot.
//
// After the welcome, desired state and events flow independently on the
// same connection, each in order, with heartbeats.
//
// # Desired state, exactly once
//
// Central records each change of a site's desired state as a new revision,
// numbered densely from 1 per site. A revision is a delta (puts and
// deletes of objects, applied in order: central orders them so that
// references resolve, such as images and templates before machines before
// orders) or a full snapshot: puts only, replacing everything central
// manages at the site, so that after it the site holds, of what came from
// central, exactly the objects it names (objects created at the site
// itself are not central's and stay). Changes are states, not commands:
// putting an object that is already so, or deleting one that is gone,
// changes nothing.
//
// A revision too big for one frame is sent in parts (SplitDesired): the
// same revision and full flag, part 0, 1, ... in order, every part but the
// last with more set. Parts of different revisions never interleave; a
// new connection starts a revision again from part 0.
//
// Central keeps each site's revisions (it may compact old deltas into a
// snapshot). From the hello's applied_revision A it sends, in order:
// the deltas A+1, A+2, ... if it still has them all, else a full
// snapshot of its latest revision, then the deltas after it, as they
// come. If A is past central's latest revision (central was restored from
// an old backup), central first advances its revision numbers for the
// site past A, then sends a full snapshot: revisions never go back.
// Welcome.NextRevision says which revision comes first.
//
// The site applies revision N only if N is its applied revision plus one,
// or N is a full snapshot past it (DesiredReceiver checks the order of a
// connection's messages). It applies each revision through its Raft log,
// and the command that completes a revision also records N as the applied
// revision, in the same transaction; the state machine itself refuses
// (as a no-op) a revision that does not follow the recorded one, so a
// command submitted twice, say by two nodes that both believed they led,
// applies once. Once N is committed the site sends desired_ack N.
//
// Exactly once, through any failure: if the site crashes, loses
// leadership or loses the connection before N is committed, its next hello
// says A < N and central sends N again; if after, its hello says N and
// central sends what follows N. The site's applied revision, replicated
// by Raft, is the only cursor: desired_ack only tells central how far the
// site is (for its display, and to compact). A site may apply a
// revision's parts as they arrive, each as one command, the last one
// recording N (and, for a snapshot, deleting what the snapshot did not
// name); if the connection is cut before the last part, the parts are
// sent again, and applying them again changes nothing. Central checks that
// an ack names a revision it has sent.
//
// # Objects
//
// A change's object is one of four kinds (Kinds, in the order central
// lists them so that references resolve): image, template, machine and
// order, typed as *Image, *Template, *Machine and *Order, whose JSON
// fields are the appliance's. DecodeObject decodes a put's object into
// its type: an object without its key field (an order's or machine's
// id, an image's or template's name) takes the change's key, and one that
// names another key is bad_message. Each type validates the rules that
// need nothing of the site (Object.Validate): central checks them before
// it records a change, so that the site refuses only what depends on its
// own state. An order never changes once placed. A machine's BMC
// password travels in the clear inside the connection; each side seals
// it at rest with its own key.
//
// # Events, exactly once
//
// The site numbers its events densely from 1 (the sequence is replicated
// by Raft with them) and keeps those central has not acknowledged: its
// outbox. After the welcome it sends its events from stored_seq+1 in
// batches (SplitEvents), each of at most MaxEventsPerBatch events, its
// sequences dense from first to last, batch after batch; it may send the
// next batch before the previous is acknowledged.
//
// Central stores each batch in one transaction that reads the highest
// sequence it has stored for the site, skips the events up to it
// (duplicates: Events.Unstored), appends the rest in order and records
// the new highest; then it sends events_ack with it. A batch that would
// leave a gap (first past stored+1) is bad_message. Acks are cumulative:
// one may cover several batches, and central may ack less often than
// every batch. On events_ack S the site may forget its outbox up to S; an
// ack past the last event it sent is bad_message.
//
// Exactly once, in order, through any failure: central stores only the
// next sequence, so nothing is stored twice or out of order, even from two
// connections of the same site at once; the site forgets only what central
// has durably stored. If central crashes before committing a batch, the
// site never had an ack for it and sends it again after the next welcome,
// whose stored_seq is what central actually has. If central committed but
// the ack was lost, the welcome's stored_seq covers the batch and the site
// does not send it again. The site's acked_seq is only a hint (a new
// leader may know less than the old one did, and that is fine).
//
// Two histories that disagree are never merged silently. If central has
// stored more than the site's last_seq, the site's history went back (an
// appliance rebuilt, or restored from a backup): its new events would
// reuse sequences, so central refuses with conflict until an operator
// resets the site's events at central. If stored_seq is below the site's
// acked_seq, central lost events it had acknowledged (it was restored from
// a backup): the site sends from stored_seq+1 what it still has; only if
// it has forgotten some may its first batch after the welcome start past
// stored_seq+1, and central accepts that gap only up to the hello's
// acked_seq, recording the lost range as such.
//
// # Heartbeats
//
// After the welcome each side sends a heartbeat every
// Welcome.HeartbeatInterval (DefaultHeartbeat unless central is configured
// otherwise). A side that receives nothing at all from its peer for
// HeartbeatMisses intervals considers it gone and closes the connection;
// the site then reconnects.
//
// # Errors
//
// Either side may send error, with a code (the Code constants), a message
// safe to show and, for a message that broke a rule, the offending field.
// The sender then closes the connection (websocket status 1008, policy
// violation, for bad_message, unauthorized, incompatible_version and
// conflict; 1001, going away, for replaced and unavailable; 1011 for
// internal). The site reconnects with backoff: long for unauthorized,
// incompatible_version and conflict, which need an operator. A receiver
// treats a code it does not know as internal. Decode's and the helpers'
// errors are *Error values ready to send (ErrorFor turns any error into
// one without leaking it).
//
// # Credentials
//
// A site's credential is a bearer token that central gives when the site
// is created; it travels only in the hello, over TLS. Credential hides it
// from fmt, log/slog and encoding/json: only Encode writes it out, and no
// error of this package quotes it.
package syncproto
