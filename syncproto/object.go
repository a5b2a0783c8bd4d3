package syncproto

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Kinds of the objects a desired change carries (Change.Kind), in the
// order central lists them so that references resolve at the site:
// images and templates before the machines that use them, machines
// before the orders that name them.
const (
	KindImage    = "image"
	KindTemplate = "template"
	KindMachine  = "machine"
	KindOrder    = "order"
)

// Kinds lists the kinds of objects in reference order.
var Kinds = []string{KindImage, KindTemplate, KindMachine, KindOrder}

// Object is the typed object of a desired change: *Order, *Machine,
// *Image or *Template. Its JSON is what Change.Object holds.
type Object interface {
	// Kind is the object's kind (KindOrder...).
	Kind() string
	// Key is the object's key within its kind: an order's or a
	// machine's id, an image's or a template's name.
	Key() string
	// Validate checks the rules an object meets wherever it is, which
	// need nothing of the site: names, formats, one-of values, the
	// shape of a template's graph. The site may refuse more (a machine
	// an order names that it does not have, an action type its installer
	// does not know). The error is an *Error with CodeBadMessage whose
	// Field is the offending field's path within the object
	// ("bmc.address", "actions[2].needs[0]").
	Validate() error
	// keyField is where the object holds its key.
	keyField() *string
}

// newObject makes an empty object of each kind, to decode into.
var newObject = map[string]func() Object{
	KindOrder:    func() Object { return new(Order) },
	KindMachine:  func() Object { return new(Machine) },
	KindImage:    func() Object { return new(Image) },
	KindTemplate: func() Object { return new(Template) },
}

// DecodeObject decodes the object of a put of kind under key into its
// type and validates it. Fields the type does not know are ignored (a
// newer peer may send more), as in frames. An object whose key field is
// empty takes key; one that names another key is refused. The error is
// an *Error with CodeBadMessage naming the field.
func DecodeObject(kind, key string, raw json.RawMessage) (Object, error) {
	newObj, ok := newObject[kind]
	if !ok {
		return nil, invalid("", "kind", "%q is not one of %s", clip(kind), strings.Join(Kinds, ", "))
	}
	if err := validKey(kind, "key", key); err != nil {
		return nil, err
	}
	if err := validObject(kind, "", raw, MaxObjectSize); err != nil {
		return nil, err
	}
	obj := newObj()
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, jsonError(kind, err)
	}
	switch k := obj.keyField(); *k {
	case "":
		*k = key
	case key:
	default:
		return nil, invalid(kind, "", "names %s %q, but its key is %q", kind, clip(*k), clip(key))
	}
	if err := obj.Validate(); err != nil {
		return nil, err
	}
	return obj, nil
}

// objectName checks an object's name (a key, or a reference to one): a
// site id's rule.
func objectName(kind, field, v string) error { return validName(kind, field, v) }

// oneOf checks that v is one of allowed.
func oneOf(kind, field, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return invalid(kind, field, "%q is not one of %s", clip(v), strings.Join(allowed, ", "))
}

// oneOfOrEmpty is oneOf for a field the site fills with its default.
func oneOfOrEmpty(kind, field, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	return oneOf(kind, field, v, allowed...)
}

// Duration is a time.Duration written as a string, "90s" or "5m", in
// JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// The decoder names the field; the value is not quoted.
		return &json.UnmarshalTypeError{Value: "string", Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}
