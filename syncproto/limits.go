package syncproto

import "time"

// Path is where central serves the sync websocket.
const Path = "/v1/sync"

// Limits both sides enforce: a sender never sends more (Encode and the
// Split functions hold it to them), a receiver refuses more as
// bad_message (Decode).
const (
	// MaxFrameSize is the largest frame, in bytes. Both sides set their
	// websocket read limit to it.
	MaxFrameSize = 4 << 20
	// MaxEventsPerBatch is the most events in one events message.
	MaxEventsPerBatch = 1000
	// MaxEventSize is the largest event's data, in bytes. The appliance
	// bounds its events when it records them: an event it cannot send
	// would hold up all the events after it.
	MaxEventSize = 64 << 10
	// MaxSpansPerBatch is the most spans in one spans message, and
	// MaxSpanSize the largest span, in bytes.
	MaxSpansPerBatch = 1000
	MaxSpanSize      = 64 << 10
	// MaxObjectSize is the largest object of a desired change, in bytes.
	MaxObjectSize = 1 << 20
	// MaxKeySize is the longest key of a desired change, in bytes.
	MaxKeySize = 255
	// MaxCredentialSize is the longest credential, in bytes.
	MaxCredentialSize = 4096
	// MaxErrorMessage is the longest message of an error, in bytes.
	MaxErrorMessage = 4096
)

// Timing.
const (
	// DefaultHeartbeat is the heartbeat interval central chooses unless
	// configured otherwise; MinHeartbeat and MaxHeartbeat bound the
	// interval a welcome may set.
	DefaultHeartbeat = 10 * time.Second
	MinHeartbeat     = 100 * time.Millisecond
	MaxHeartbeat     = 5 * time.Minute
	// HeartbeatMisses is how many heartbeat intervals a peer may stay
	// silent (send no message at all) before the other side considers it
	// gone and closes the connection.
	HeartbeatMisses = 3
	// HandshakeTimeout is how long central waits for a hello after the
	// websocket opens, and the site for the answer to its hello.
	HandshakeTimeout = 10 * time.Second
)
