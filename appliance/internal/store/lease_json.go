package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// A lease is written on every DHCP ACK, so its record is written here
// rather than through unsafePut's generic path: the caller has read the
// record it replaces already (UnsafePutLease's cur), and the JSON is
// appended by hand, byte for byte what encoding/json writes (every node
// stores the same bytes whichever way they were made), falling back to
// encoding/json for what the hand-written form does not cover.

// putLeaseRecord stores l over cur as unsafePut would: the version
// expected checked, the creation time kept, the version and update time
// set from w.
func (tx *Tx) putLeaseRecord(l, cur *Lease, w Write) error {
	b := tx.tx.Bucket(bucketLeases)
	m := &l.Meta
	switch {
	case cur != nil && cur.IP == l.IP:
		if w.Expect != 0 && cur.Version != w.Expect {
			return errs.Conflict("%s %q is at version %d, not %d", l.Kind(), l.Key(), cur.Version, w.Expect)
		}
		m.CreatedAt = cur.CreatedAt
	case cur != nil || b.Get([]byte(l.IP)) != nil:
		// Not what is stored at the address: the generic path reads it.
		return tx.putRaw(l, w)
	default:
		if w.Expect != 0 {
			return errs.Conflict("%s %q does not exist (expected version %d)", l.Kind(), l.Key(), w.Expect)
		}
		m.CreatedAt = w.Time
	}
	m.Version = w.Index
	m.UpdatedAt = w.Time
	raw, err := marshalLease(l)
	if err != nil {
		return err
	}
	return b.Put([]byte(l.IP), raw)
}

// marshalLease is json.Marshal(l).
func marshalLease(l *Lease) ([]byte, error) {
	if raw, ok := appendLeaseJSON(make([]byte, 0, 320), l); ok {
		return raw, nil
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("store: encode lease %q: %w", l.IP, err)
	}
	return raw, nil
}

// appendLeaseJSON appends l as encoding/json would, or reports false for
// a lease it cannot write so: a string that JSON would escape, a time
// outside the years 0 to 9999 or with an offset of a day or more.
func appendLeaseJSON(b []byte, l *Lease) ([]byte, bool) {
	ok := true
	str := func(key, s string, omitEmpty bool) {
		if omitEmpty && s == "" {
			return
		}
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':', '"')
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				ok = false
				return
			}
		}
		b = append(b, s...)
		b = append(b, '"')
	}
	tm := func(key string, t time.Time) {
		if _, off := t.Zone(); t.Year() < 0 || t.Year() > 9999 || off <= -24*3600 || off >= 24*3600 {
			ok = false
			return
		}
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':', '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `{"version":`...)
	b = strconv.AppendUint(b, l.Version, 10)
	tm("created_at", l.CreatedAt)
	tm("updated_at", l.UpdatedAt)
	str("ip", l.IP, false)
	str("mac", l.MAC, false)
	str("machine_id", l.MachineID, true)
	str("hostname", l.Hostname, true)
	str("subnet", l.Subnet, false)
	str("state", string(l.State), false)
	tm("starts", l.Starts)
	tm("expires", l.Expires)
	b = append(b, '}')
	return b, ok
}

// Reading a lease back is as hot as writing it (the state machine reads
// the lease it replaces on every ACK; the DHCP server reads one per
// offer and renewal), so the form appendLeaseJSON writes is parsed by
// hand too; whatever else is stored (keys in another order, escapes,
// spaces: a record another writer made) goes to encoding/json.

// leaseKeys are the keys appendLeaseJSON writes, in its order, after
// "version"; those marked optional are left out when empty.
var leaseKeys = []struct {
	key      string
	optional bool
}{
	{"created_at", false}, {"updated_at", false}, {"ip", false}, {"mac", false},
	{"machine_id", true}, {"hostname", true}, {"subnet", false}, {"state", false},
	{"starts", false}, {"expires", false},
}

// parseLeaseJSON fills l from raw if raw is in the form appendLeaseJSON
// writes, with what encoding/json would decode, and reports whether it
// was; l is then to be decoded by encoding/json.
func parseLeaseJSON(raw []byte, l *Lease) bool {
	const head = `{"version":`
	if len(raw) < len(head) || string(raw[:len(head)]) != head {
		return false
	}
	p := raw[len(head):]
	n := 0
	for n < len(p) && p[n] >= '0' && p[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && p[0] == '0' {
		return false
	}
	v, err := strconv.ParseUint(string(p[:n]), 10, 64)
	if err != nil {
		return false
	}
	l.Version = v
	p = p[n:]
	for _, k := range leaseKeys {
		val, rest, ok := leaseField(p, k.key)
		if !ok {
			if k.optional {
				continue
			}
			return false
		}
		if !setLeaseField(l, k.key, val) {
			return false
		}
		p = rest
	}
	return len(p) == 1 && p[0] == '}'
}

// leaseField reads `,"key":"value"` at the start of p: value, with its
// quotes, and what follows. A value JSON would unescape or check (an
// escape, a control byte, a byte of a multi-byte character) is not
// read.
func leaseField(p []byte, key string) (val, rest []byte, ok bool) {
	if len(p) < len(key)+5 || p[0] != ',' || p[1] != '"' || string(p[2:2+len(key)]) != key || p[2+len(key)] != '"' || p[3+len(key)] != ':' {
		return nil, nil, false
	}
	p = p[4+len(key):]
	if len(p) == 0 || p[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			return p[:i+1], p[i+1:], true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// setLeaseField sets l's field of key from its quoted JSON value.
func setLeaseField(l *Lease, key string, quoted []byte) bool {
	s := quoted[1 : len(quoted)-1]
	switch key {
	case "created_at":
		return l.CreatedAt.UnmarshalJSON(quoted) == nil
	case "updated_at":
		return l.UpdatedAt.UnmarshalJSON(quoted) == nil
	case "starts":
		return l.Starts.UnmarshalJSON(quoted) == nil
	case "expires":
		return l.Expires.UnmarshalJSON(quoted) == nil
	case "ip":
		l.IP = string(s)
	case "mac":
		l.MAC = string(s)
	case "machine_id":
		l.MachineID = string(s)
	case "hostname":
		l.Hostname = string(s)
	case "subnet":
		l.Subnet = string(s)
	case "state":
		l.State = leaseState(s)
	}
	return true
}

// leaseState is s as a LeaseState, without a copy for the known states.
func leaseState(s []byte) LeaseState {
	for _, st := range []LeaseState{LeaseActive, LeaseOffered, LeaseReleased, LeaseDeclined} {
		if string(s) == string(st) {
			return st
		}
	}
	return LeaseState(s)
}
