package syncproto

import "fmt"

// Version is the newest protocol version this code speaks, and MinVersion
// the oldest. A version is a set of message types and their fields; a
// change a peer of the same version could misread (a new message type, a
// field whose meaning changes, a new rule) takes a new version. Adding an
// optional field that an older peer may ignore does not.
//
// History (the date is the day the version was defined):
//
//   - 1 (2026-11-22): hello, welcome, desired (full or delta, in parts),
//     desired_ack, events, events_ack, heartbeat, error.
//   - 2026-12-06, still version 1: the objects of desired changes are
//     typed (Order, Machine, Image, Template; DecodeObject) and their rules
//     written down; their JSON is what the appliance already exchanged,
//     so the wire does not change.
//   - 2026-12-07, still version 1: an OS image may be its sha256 alone,
//     and an installer's kernel and initrd "sha256:<hex>": artifacts
//     central holds, which the site pulls from central (GET
//     /v1/sites/{site}/artifacts/{sha256}, with the site's credential).
//     A site of an older release refuses such an image, naming the
//     field, in a sync.refused event: nothing is misread.
//   - 2026-12-07, still version 1: an order may carry image_sha256, the
//     digest central resolved its image's name to; the site installs
//     that exact image, and an order whose image at the site is another
//     waits for it (order.waiting, saying both digests). A site of an
//     older release ignores the field and installs the image as named.
//   - 2026-12-07, still version 1: a site's hello and heartbeats may
//     carry a report of itself (Report: its release, its cluster's
//     health, its console's URL, its newest event's sequence), which
//     central shows in its fleet overview. A central of an older release
//     ignores it.
//   - 2 (2026-12-07): tracing. The site sends the spans it recorded
//     (spans, each acknowledged by a spans_ack), which a central of
//     version 1 would refuse as an unknown message type: a site sends
//     spans only on a connection of version 2. An order may carry a
//     traceparent (W3C), the span of central's placing it, which the
//     site's spans of that order descend from; a site of an older
//     release ignores it.
const (
	Version    = 2
	MinVersion = 1
)

// Supported is the range of versions this code speaks.
var Supported = VersionRange{Min: MinVersion, Max: Version}

// VersionRange is a range of protocol versions, both ends included.
type VersionRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Contains reports whether v is in the range.
func (r VersionRange) Contains(v int) bool { return r.Min <= v && v <= r.Max }

// String is "version 1" or "versions 1 to 3".
func (r VersionRange) String() string {
	if r.Min == r.Max {
		return fmt.Sprintf("version %d", r.Min)
	}
	return fmt.Sprintf("versions %d to %d", r.Min, r.Max)
}

func (r VersionRange) validate(typ, field string) error {
	switch {
	case r.Min < 1:
		return invalid(typ, field+".min", "is %d, want at least 1", r.Min)
	case r.Max < r.Min:
		return invalid(typ, field+".max", "is %d, below min %d", r.Max, r.Min)
	}
	return nil
}

// Negotiate returns the version a connection speaks: the newest version
// in both ranges. Central runs it on a hello, with local its own range
// (Supported) and remote the hello's, and answers the error it returns
// (CodeIncompatibleVersion when the ranges have no version in common,
// naming both) instead of a welcome.
func Negotiate(local, remote VersionRange) (int, error) {
	if err := local.validate("", "local"); err != nil {
		return 0, err
	}
	if err := remote.validate(TypeHello, "versions"); err != nil {
		return 0, err
	}
	v := min(local.Max, remote.Max)
	if v < max(local.Min, remote.Min) {
		return 0, Errorf(CodeIncompatibleVersion,
			"no protocol version in common: central speaks %s, the site speaks %s; upgrade the older side", local, remote)
	}
	return v, nil
}
