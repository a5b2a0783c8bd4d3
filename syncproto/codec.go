package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// envelope is a frame: {"type": "...", "body": {...}}.
type envelope struct {
	Type string `json:"type"`
	Body any    `json:"body"`
}

// helloWire is a hello as it is sent: the only place the credential is
// written out. Its Credential field hides Hello's (the shallower field
// wins in encoding/json). Hello must not implement json.Marshaler, or
// helloWire would too.
type helloWire struct {
	*Hello
	Credential string `json:"credential"`
}

// newMessage makes an empty message of each type, to decode a body into.
var newMessage = map[string]func() Message{
	TypeHello:      func() Message { return new(Hello) },
	TypeWelcome:    func() Message { return new(Welcome) },
	TypeDesired:    func() Message { return new(Desired) },
	TypeDesiredAck: func() Message { return new(DesiredAck) },
	TypeEvents:     func() Message { return new(Events) },
	TypeEventsAck:  func() Message { return new(EventsAck) },
	TypeHeartbeat:  func() Message { return new(Heartbeat) },
	TypeSpans:      func() Message { return new(Spans) },
	TypeSpansAck:   func() Message { return new(SpansAck) },
	TypeError:      func() Message { return new(Error) },
}

// Encode validates msg and returns its frame, compact JSON (HTML
// characters not escaped) of at most MaxFrameSize bytes. The error of an
// invalid msg is an *Error with CodeBadMessage naming the field.
func Encode(msg Message) ([]byte, error) {
	if msg == nil || reflect.ValueOf(msg).IsNil() {
		return nil, invalid("", "", "cannot encode a nil message")
	}
	if err := msg.Validate(); err != nil {
		return nil, err
	}
	var body any = msg
	if h, ok := msg.(*Hello); ok {
		body = helloWire{h, string(h.Credential)}
	}
	frame, err := marshal(envelope{Type: msg.Type(), Body: body})
	if err != nil {
		return nil, invalid(msg.Type(), "", "encode: %v", err)
	}
	if len(frame) > MaxFrameSize {
		return nil, invalid(msg.Type(), "", "frame is %d bytes, more than the limit of %d", len(frame), MaxFrameSize)
	}
	return frame, nil
}

// marshal is json.Marshal without HTML escaping, which leaves raw JSON
// (event data, objects) as compact as Decode makes it.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Decode parses and validates a frame. Fields it does not know are
// ignored (a newer peer may send more); a type it does not know, a frame
// over MaxFrameSize, malformed JSON and an invalid message are an *Error
// with CodeBadMessage, to send back before closing. Its message never
// quotes the frame's values, so it cannot leak a credential. The raw
// JSON of event data and objects is compacted.
func Decode(frame []byte) (Message, error) {
	if len(frame) > MaxFrameSize {
		return nil, invalid("", "", "frame is %d bytes, more than the limit of %d", len(frame), MaxFrameSize)
	}
	var env struct {
		Type string          `json:"type"`
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(frame, &env); err != nil {
		return nil, jsonError("", err)
	}
	if env.Type == "" {
		return nil, invalid("", "type", "is required")
	}
	newMsg, ok := newMessage[env.Type]
	if !ok {
		return nil, invalid("", "type", "unknown message type %q", clip(env.Type))
	}
	msg := newMsg()
	if len(env.Body) > 0 && string(env.Body) != "null" {
		if err := json.Unmarshal(env.Body, msg); err != nil {
			return nil, jsonError(env.Type, err)
		}
	}
	if err := compactRaw(msg); err != nil {
		return nil, err
	}
	if err := msg.Validate(); err != nil {
		return nil, err
	}
	return msg, nil
}

// jsonError describes a JSON error without quoting the frame.
func jsonError(typ string, err error) *Error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return invalid(typ, "", "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return invalid(typ, typeErr.Field, "must be a JSON %s", jsonKind(typeErr.Type))
	case errors.As(err, &typeErr):
		return invalid(typ, "", "must be a JSON %s", jsonKind(typeErr.Type))
	}
	return invalid(typ, "", "malformed JSON")
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return `string of a duration, such as "90s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "non-negative integer"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return "value of another type"
}

// compactRaw compacts the raw JSON a message carries, and makes a null
// object absent, so that a decoded message encodes to the same frame
// whatever spacing its sender used.
func compactRaw(msg Message) error {
	compact := func(typ, field string, raw *json.RawMessage) error {
		if *raw == nil {
			return nil
		}
		if string(*raw) == "null" {
			*raw = nil
			return nil
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, *raw); err != nil {
			return invalid(typ, field, "is not valid JSON")
		}
		*raw = buf.Bytes()
		return nil
	}
	switch m := msg.(type) {
	case *Desired:
		for i := range m.Changes {
			if err := compact(TypeDesired, fmt.Sprintf("changes[%d].object", i), &m.Changes[i].Object); err != nil {
				return err
			}
		}
	case *Events:
		for i := range m.Events {
			if err := compact(TypeEvents, fmt.Sprintf("events[%d].data", i), &m.Events[i].Data); err != nil {
				return err
			}
		}
	}
	return nil
}
