// Package command is how both sides of Outpost encode the changes their
// replicated logs carry, and how their state machines dispatch them.
//
// A command is one type byte and a payload. Types are numbered per side
// (the site's list is appliance/internal/site/command.go, central's is
// central/internal/store/command.go), append-only: a number is never
// reused or renumbered, because old logs and snapshots replay through the
// same table. A payload is JSON unless its type says otherwise (a compact
// binary encoding where a command is hot).
//
// Bit 128 (IgnoreUnknown) marks a type that a node which does not know it
// may skip: a hint, a cache fill. Any other unknown type stops the node
// (Table.Apply panics): a log entry it cannot understand was written by
// newer code, and skipping it would fork the replicas.
//
// Two types belong to the shared core (package raftnode) and mean the same
// on both sides: Batch, several commands in one log entry (the group
// commit), and Noop, which changes nothing but the applied index.
package command

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Type is a command's first byte.
type Type uint8

// Types of the shared core. Each side numbers its own types around them.
const (
	// Batch is a log entry that carries several commands: its payload is
	// a sequence of (uvarint length, command) pairs, applied in order at
	// the entry's index, each with its own result. Only the Raft node
	// writes it (the group commit); a state machine never sees one.
	Batch Type = 19
	// Noop changes nothing but the applied index. A new leader commits
	// one, so that its state machine has applied everything committed
	// before its term (Raft's own no-op entry never reaches the state
	// machine).
	Noop Type = 20

	// IgnoreUnknown is or-ed into a type that older nodes may skip.
	IgnoreUnknown Type = 128
)

// ErrUnknown is the panic value's cause for a command type a node does not
// understand; see the package doc.
var ErrUnknown = errors.New("command: unknown command type")

// Encode builds a command from its type and a JSON payload.
func Encode(t Type, payload any) ([]byte, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("command: encode type %d: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// Split returns a command's type and payload. An empty command has type 0,
// which no side uses.
func Split(cmd []byte) (Type, []byte) {
	if len(cmd) == 0 {
		return 0, nil
	}
	return Type(cmd[0]), cmd[1:]
}

// EncodeBatch packs commands into one Batch command.
func EncodeBatch(cmds [][]byte) []byte {
	n := 1
	for _, c := range cmds {
		n += binary.MaxVarintLen64 + len(c)
	}
	buf := make([]byte, 1, n)
	buf[0] = byte(Batch)
	for _, c := range cmds {
		buf = binary.AppendUvarint(buf, uint64(len(c)))
		buf = append(buf, c...)
	}
	return buf
}

// SplitBatch returns the commands of a Batch command's payload. A
// malformed payload, or a batch inside a batch, is an error.
func SplitBatch(payload []byte) ([][]byte, error) {
	var cmds [][]byte
	for len(payload) > 0 {
		n, k := binary.Uvarint(payload)
		if k <= 0 || uint64(len(payload)-k) < n {
			return nil, errors.New("command: truncated batch")
		}
		c := payload[k : k+int(n)]
		if t, _ := Split(c); t == Batch {
			return nil, errors.New("command: a batch inside a batch")
		}
		cmds = append(cmds, c)
		payload = payload[k+int(n):]
	}
	return cmds, nil
}

// MustDecode decodes a JSON payload or panics: a log holds only what
// Encode wrote, so a payload that does not decode means damage or a
// version skew that must stop the node rather than fork it.
func MustDecode(payload []byte, v any, index uint64) {
	if err := json.Unmarshal(payload, v); err != nil {
		panic(fmt.Sprintf("command: decode command at index %d: %v", index, err))
	}
}

// Entry is one command of a committed log entry, as a state machine
// applies it. The Raft node unpacks a Batch entry into one Entry per
// command, all with the entry's index.
type Entry struct {
	Index uint64
	// Data is the command; nil for an entry that only advances the index
	// (a configuration change).
	Data []byte
}

// Func applies one command's payload inside a state machine's transaction
// tx, at log index index. It returns the command's result; a domain error
// (a refusal, which must have changed nothing) is returned as the error,
// like a storage failure: the state machine tells them apart.
type Func[Tx any] func(tx Tx, payload []byte, index uint64) (any, error)

// Table dispatches commands by type. Noop is built in.
type Table[Tx any] map[Type]Func[Tx]

// Apply applies cmd with the function its type names. An unknown type
// marked IgnoreUnknown is skipped (skipped is true); any other unknown
// type panics with an error wrapping ErrUnknown.
func (t Table[Tx]) Apply(tx Tx, cmd []byte, index uint64) (result any, skipped bool, err error) {
	typ, payload := Split(cmd)
	if typ == Noop {
		return nil, false, nil
	}
	fn, ok := t[typ]
	if !ok {
		if typ&IgnoreUnknown != 0 {
			return nil, true, nil
		}
		panic(fmt.Errorf("%w %d at index %d: the log was written by a newer release; upgrade this node", ErrUnknown, uint8(typ), index))
	}
	result, err = fn(tx, payload, index)
	return result, false, err
}
