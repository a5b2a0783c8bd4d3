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
