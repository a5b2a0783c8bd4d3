package main

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestReadFailover(t *testing.T) {
	kill := time.Unix(1000, 0)
	at := func(ms int) time.Time { return kill.Add(time.Duration(ms) * time.Millisecond) }
	k := killedLeader{id: "n1", addr: "198.18.0.11", at: kill}
	tests := map[string]struct {
		replies     []reply
		silent      time.Duration
		first       time.Duration
		answeredBy  string
		wantFailure bool
	}{
		"gap across the kill": {
			replies: []reply{{at(-3000), "198.18.0.11", 0}, {at(-20), "198.18.0.11", 0}, {at(-10), "198.18.0.11", 0},
				{at(600), "198.18.0.12", 0}, {at(610), "198.18.0.12", 0}},
			silent: 610 * time.Millisecond, first: 600 * time.Millisecond, answeredBy: "198.18.0.12",
		},
		"the killed node's late reply is no answer of the new leader": {
			replies: []reply{{at(-10), "198.18.0.11", 0}, {at(5), "198.18.0.11", 0}, {at(400), "198.18.0.13", 0}},
			silent:  395 * time.Millisecond, first: 400 * time.Millisecond, answeredBy: "198.18.0.13",
		},
		"a longer gap after the failover counts": {
			replies: []reply{{at(-10), "198.18.0.11", 0}, {at(300), "198.18.0.12", 0}, {at(1500), "198.18.0.12", 0}},
			silent:  1200 * time.Millisecond, first: 300 * time.Millisecond, answeredBy: "198.18.0.12",
		},
		"nobody answered after the kill": {
			replies:     []reply{{at(-10), "198.18.0.11", 0}, {at(3), "198.18.0.11", 0}},
			wantFailure: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := readFailover(tc.replies, k)
			if tc.wantFailure {
				if err == nil {
					t.Fatalf("got %+v, want an error", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.silent != tc.silent || r.firstAnswer != tc.first || r.answeredBy != tc.answeredBy {
				t.Errorf("got silent %v, first %v from %s; want %v, %v from %s", r.silent, r.firstAnswer, r.answeredBy, tc.silent, tc.first, tc.answeredBy)
			}
		})
	}
}

// TestParseReply reads an OFFER in an IPv4/UDP packet with its kernel
// stamp, and skips what is not a server's OFFER or ACK.
func TestParseReply(t *testing.T) {
	offer, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	if err != nil {
		t.Fatal(err)
	}
	discover, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Unix(1700000000, 123456789)
	oob := timestampCmsg(stamp)
	if r, ok := parseReply(udpPacket(67, offer.ToBytes()), oob); !ok || !r.at.Equal(stamp) || r.from != "198.18.0.11" || r.typ != dhcpv4.MessageTypeOffer {
		t.Errorf("offer: %+v, %v", r, ok)
	}
	if _, ok := parseReply(udpPacket(67, discover.ToBytes()), oob); ok {
		t.Error("a DISCOVER was taken for an answer")
	}
	if _, ok := parseReply(udpPacket(68, offer.ToBytes()), oob); ok {
		t.Error("a packet not from port 67 was taken for an answer")
	}
	if _, ok := parseReply(udpPacket(67, offer.ToBytes()), nil); ok {
		t.Error("a packet without a time stamp was taken")
	}
}

// udpPacket is an IPv4 packet from 198.18.0.11:sport to port 68.
func udpPacket(sport uint16, payload []byte) []byte {
	p := make([]byte, 28, 28+len(payload))
	p[0], p[9] = 0x45, syscall.IPPROTO_UDP
	copy(p[12:16], net.IPv4(198, 18, 0, 11).To4())
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], 68)
	return append(p, payload...)
}

// timestampCmsg is an SO_TIMESTAMPNS control message holding at.
func timestampCmsg(at time.Time) []byte {
	data := make([]byte, 16)
	binary.NativeEndian.PutUint64(data, uint64(at.Unix()))
	binary.NativeEndian.PutUint64(data[8:], uint64(at.Nanosecond()))
	b := make([]byte, syscall.CmsgSpace(len(data)))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS
	h.SetLen(syscall.CmsgLen(len(data)))
	copy(b[syscall.CmsgLen(0):], data)
	return b
}

func TestLastEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events")
	if err := os.WriteFile(path, []byte("deconfig \nbound 198.19.1.100\nrenew 198.19.1.100\nbound 198.19.1.101\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ip, ok := lastEvent(path, "bound"); !ok || ip != "198.19.1.101" {
		t.Errorf("bound: %q %v", ip, ok)
	}
	if ip, ok := lastEvent(path, "renew"); !ok || ip != "198.19.1.100" {
		t.Errorf("renew: %q %v", ip, ok)
	}
	if _, ok := lastEvent(path, "leasefail"); ok {
		t.Error("leasefail found")
	}
}

func TestLeaderLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "applianced.log")
	log := `time=2026-12-07T18:05:30.000Z level=INFO msg="election won" component=raft term=2 tally=1
time=2026-12-07T18:05:30.010Z level=INFO msg=leading id=n2 term=2
time=2026-12-07T18:05:40.400Z level=WARN msg="heartbeat timeout reached, starting election" component=raft
time=2026-12-07T18:05:40.500Z level=INFO msg="election won" component=raft term=3 tally=2
time=2026-12-07T18:05:40.530Z level=INFO msg=leading id=n2 term=3
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	kill := time.Date(2026, 12, 7, 18, 5, 40, 0, time.UTC)
	elected, ready, err := leaderLog(path, kill)
	if err != nil || elected != 500*time.Millisecond || ready != 530*time.Millisecond {
		t.Errorf("elected %v, ready %v, %v; want 500ms, 530ms", elected, ready, err)
	}
	if _, _, err := leaderLog(path, kill.Add(time.Second)); err == nil {
		t.Error("no error for a log without an election after the kill")
	}
}
