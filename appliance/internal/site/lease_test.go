package site

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
)

// leaseCommitPayload is a CommitLease command without its type byte.
func leaseCommitPayload(t testing.TB, l *store.Lease) []byte {
	t.Helper()
	cmd, err := encodeLeaseCommit(l)
	if err != nil {
		t.Fatalf("encodeLeaseCommit(%+v): %v", l, err)
	}
	if typ, _ := command.Split(cmd); typ != CommitLease {
		t.Fatalf("encodeLeaseCommit built a command of type %d", typ)
	}
	return cmd[1:]
}

func TestLeaseCommitRoundTrip(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := map[string]struct {
		lease *store.Lease
		want  *store.Lease // nil: the lease itself
	}{
		"active":   {lease: sampleLease("198.18.0.100")},
		"offered":  {lease: &store.Lease{IP: "10.0.0.1", MAC: "02:00:00:00:00:01", Subnet: "lab", State: store.LeaseOffered, Starts: t0, Expires: t0.Add(time.Minute)}},
		"released": {lease: &store.Lease{IP: "255.255.255.255", MAC: "ff:ff:ff:ff:ff:ff", Subnet: "s", State: store.LeaseReleased, Starts: t0, Expires: t0}},
		"declined": {lease: &store.Lease{IP: "0.0.0.0", MAC: "00:00:00:00:00:00", Subnet: "s", State: store.LeaseDeclined, Starts: t0, Expires: t0.Add(24 * time.Hour)}},
		"long strings": {lease: &store.Lease{IP: "198.18.0.7", MAC: "02:00:00:00:00:07", Subnet: strings.Repeat("s", 200), MachineID: strings.Repeat("m", 300),
			Hostname: strings.Repeat("h", 70000), State: store.LeaseActive, Starts: t0, Expires: t0.Add(time.Hour)}},
		"nanoseconds": {lease: &store.Lease{IP: "198.18.0.8", MAC: "02:00:00:00:00:08", Subnet: "lab", State: store.LeaseActive,
			Starts: t0.Add(123456789), Expires: t0.Add(time.Hour + 1)}},
		"other notation and zone": {
			lease: &store.Lease{IP: "198.18.0.9", MAC: "AA-BB-CC-00-00-09", Subnet: "lab", State: store.LeaseActive, Starts: t0.In(cet), Expires: t0.Add(time.Hour).In(cet)},
			want:  &store.Lease{IP: "198.18.0.9", MAC: "aa:bb:cc:00:00:09", Subnet: "lab", State: store.LeaseActive, Starts: t0, Expires: t0.Add(time.Hour)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = tc.lease
			}
			got, err := decodeLeaseCommit(leaseCommitPayload(t, tc.lease))
			if err != nil {
				t.Fatalf("decodeLeaseCommit: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decoded lease (-want +got):\n%s", diff)
			}
			if got.Starts.Location() != time.UTC || got.Expires.Location() != time.UTC {
				t.Errorf("decoded times %v, %v: want UTC", got.Starts, got.Expires)
			}
		})
	}
}

func TestEncodeLeaseCommitRefuses(t *testing.T) {
	for name, l := range map[string]*store.Lease{
		"IPv6 address":  {IP: "2001:db8::1", MAC: "02:00:00:00:00:01", State: store.LeaseActive},
		"IPv4 in IPv6":  {IP: "::ffff:198.18.0.1", MAC: "02:00:00:00:00:01", State: store.LeaseActive},
		"no address":    {MAC: "02:00:00:00:00:01", State: store.LeaseActive},
		"EUI-64":        {IP: "198.18.0.1", MAC: "02:00:00:00:00:00:00:01", State: store.LeaseActive},
		"not a MAC":     {IP: "198.18.0.1", MAC: "x", State: store.LeaseActive},
		"unknown state": {IP: "198.18.0.1", MAC: "02:00:00:00:00:01", State: "bound"},
		"no state":      {IP: "198.18.0.1", MAC: "02:00:00:00:00:01"},
	} {
		if cmd, err := encodeLeaseCommit(l); err == nil {
			t.Errorf("%s: encoded as %x", name, cmd)
		}
	}
}

func TestDecodeLeaseCommitRefuses(t *testing.T) {
	good := leaseCommitPayload(t, sampleLease("198.18.0.100"))
	withState := func(s byte) []byte {
		p := append([]byte(nil), good...)
		p[10] = s
		return p
	}
	for name, p := range map[string][]byte{
		"empty":               nil,
		"short":               good[:26],
		"no strings":          good[:27],
		"state 0":             withState(0),
		"state past the last": withState(byte(len(leaseStates))),
		"string past the end": append(append([]byte(nil), good[:27]...), 5, 'l', 'a', 'b'),
		"huge length":         append(append([]byte(nil), good[:27]...), binary.AppendUvarint(nil, 1<<63)...),
		"bad varint":          append(append([]byte(nil), good[:27]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"trailing bytes":      append(append([]byte(nil), good...), 0),
	} {
		if l, err := decodeLeaseCommit(p); err == nil {
			t.Errorf("%s: decoded as %+v", name, l)
		}
	}
}

// FuzzDecodeLeaseCommit: any bytes decode or are refused, never panic;
// what decodes encodes again to a command that decodes the same.
func FuzzDecodeLeaseCommit(f *testing.F) {
	f.Add(leaseCommitPayload(f, sampleLease("198.18.0.100")))
	f.Add(leaseCommitPayload(f, &store.Lease{IP: "10.0.0.1", MAC: "02:00:00:00:00:01", Subnet: "", State: store.LeaseDeclined}))
	f.Add([]byte{})
	f.Add(make([]byte, 27))
	f.Fuzz(func(t *testing.T, p []byte) {
		l, err := decodeLeaseCommit(p)
		if err != nil {
			return
		}
		again, err := decodeLeaseCommit(leaseCommitPayload(t, l))
		if err != nil {
			t.Fatalf("%x decodes as %+v, which does not decode once encoded: %v", p, l, err)
		}
		if diff := cmp.Diff(l, again); diff != "" {
			t.Errorf("%x: decoded, encoded and decoded again (-first +second):\n%s", p, diff)
		}
	})
}

// FuzzLeaseCommitRoundTrip: every lease the encoding takes (an IPv4
// address, a 48-bit MAC, a known state, times within int64 nanoseconds
// of 1970) decodes to itself.
func FuzzLeaseCommitRoundTrip(f *testing.F) {
	f.Add(uint32(0xc6120064), uint64(0xaabbcc000001), byte(2), t0.UnixNano(), t0.Add(time.Hour).UnixNano(), "lab", "m1", "m1.example.net")
	f.Add(uint32(0), uint64(0), byte(0), int64(-1<<63), int64(1<<63-1), "", "", "")
	f.Fuzz(func(t *testing.T, ip uint32, mac uint64, state byte, starts, expires int64, subnet, machine, host string) {
		m := binary.BigEndian.AppendUint64(nil, mac)[2:]
		l := &store.Lease{
			IP:     netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, ip))).String(),
			MAC:    fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]),
			State:  leaseStates[1+int(state)%(len(leaseStates)-1)],
			Starts: time.Unix(0, starts).UTC(), Expires: time.Unix(0, expires).UTC(),
			Subnet: subnet, MachineID: machine, Hostname: host,
		}
		got, err := decodeLeaseCommit(leaseCommitPayload(t, l))
		if err != nil {
			t.Fatalf("decodeLeaseCommit(encodeLeaseCommit(%+v)): %v", l, err)
		}
		if diff := cmp.Diff(l, got); diff != "" {
			t.Errorf("decoded lease (-want +got):\n%s", diff)
		}
	})
}
