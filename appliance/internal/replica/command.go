package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Type is a command's first byte. Values are append-only: never renumber
// or reuse one. Bit 128 (IgnoreUnknown) marks a command that an older
// node may skip if it does not know it.
type Type uint8

// Command types.
const (
	PutMachine     Type = 1
	DeleteMachine  Type = 2
	PutSubnet      Type = 3
	DeleteSubnet   Type = 4
	PutLease       Type = 5
	DeleteLease    Type = 6
	PutImage       Type = 7
	DeleteImage    Type = 8
	PutTemplate    Type = 9
	DeleteTemplate Type = 10
	PutWorkflow    Type = 11
	DeleteWorkflow Type = 12
	AppendEvents   Type = 13
	PutSettings    Type = 14
	PutMember      Type = 15
	DeleteMember   Type = 16
	PutToken       Type = 17
	DeleteToken    Type = 18
	// Batch (19) is defined in batch.go.

	// Noop changes nothing but the applied index. A new leader commits one
	// so that its store's applied index reaches the commit index (Raft's
	// own no-op entry never reaches the FSM), which linearizable reads
	// wait for.
	Noop Type = 20

	// AdvanceWorkflow (21) and Discover (22) are defined in workflow.go,
	// the order and BMC job commands (23-28) in bmc.go, the sync commands
	// (ApplyDesired 29, SyncAcked 30) in sync.go.

	// IgnoreUnknown is or-ed into a type that older nodes may skip.
	IgnoreUnknown Type = 128
)

// Put is the payload of the Put* commands: the object to store, the
// version the writer last read (0: any), and events recorded with it.
type Put[T any] struct {
	Object *T            `json:"object"`
	Expect uint64        `json:"expect,omitempty"`
	Time   time.Time     `json:"time"`
	Events []store.Event `json:"events,omitempty"`
}

// Delete is the payload of the Delete* commands.
type Delete struct {
	Key    string        `json:"key"`
	Expect uint64        `json:"expect,omitempty"`
	Time   time.Time     `json:"time"`
	Events []store.Event `json:"events,omitempty"`
}

// Events is the payload of AppendEvents.
type Events struct {
	Time   time.Time     `json:"time"`
	Events []store.Event `json:"events"`
}

// Encode builds a command from its type and payload.
func Encode(t Type, payload any) ([]byte, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("replica: encode command %d: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// Result is what applying a command returns, on the node that proposed it
// and, through forwarding, to a follower that asked the leader.
type Result struct {
	// Index is the Raft index the command was applied at.
	Index uint64 `json:"index"`
	// Object is the stored object after a put, on the node that applied
	// it; Value is the same as JSON, filled in when the result crosses
	// the network (see DecodeValue).
	Object any             `json:"-"`
	Value  json.RawMessage `json:"value,omitempty"`
	// Err is the domain error that refused the command, if any.
	Err *errs.Error `json:"error,omitempty"`
	// Batch holds the results of a Batch entry's commands.
	Batch []Result `json:"batch,omitempty"`
}

// errUnknownCommand is the panic value for a command type this node does
// not understand; see the package doc.
var errUnknownCommand = errors.New("replica: unknown command type")

// commandTypeOf returns a command's type byte.
func commandTypeOf(data []byte) (Type, []byte) {
	if len(data) == 0 {
		return 0, nil
	}
	return Type(data[0]), data[1:]
}
