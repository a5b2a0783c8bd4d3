package site

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// LeaseCommit is the payload of CommitLease, the command of the DHCP
// path: one per offer, ACK, release and decline, so its encoding is
// compact and binary rather than JSON:
//
//	ip       4 bytes
//	mac      6 bytes
//	state    1 byte (leaseStates)
//	starts   8 bytes, Unix nanoseconds, big-endian (also the command's time;
//	         0 for the zero time)
//	expires  8 bytes, the same
//	subnet, machine id, hostname: each a uvarint length and the bytes
type LeaseCommit struct {
	Lease store.Lease
}

// LeaseResult is what applying CommitLease returns.
type LeaseResult struct {
	// Renewed says the lease only extended the client's active lease on
	// the same address.
	Renewed bool `json:"renewed"`
}

// leaseStates numbers the lease states in LeaseCommit; append-only.
var leaseStates = []store.LeaseState{1: store.LeaseOffered, 2: store.LeaseActive, 3: store.LeaseReleased, 4: store.LeaseDeclined}

// encodeLeaseCommit builds a CommitLease command. The lease must be valid
// (an IPv4 address, a MAC, a known state).
func encodeLeaseCommit(l *store.Lease) ([]byte, error) {
	ip, err := netip.ParseAddr(l.IP)
	if err != nil || !ip.Is4() {
		return nil, fmt.Errorf("site: lease address %q is not IPv4", l.IP)
	}
	norm, err := store.NormalizeMAC(l.MAC)
	if err != nil {
		return nil, fmt.Errorf("site: lease MAC %q is not a 48-bit MAC", l.MAC)
	}
	mac, _ := hex.DecodeString(strings.ReplaceAll(norm, ":", ""))
	state := 0
	for i, s := range leaseStates {
		if i > 0 && s == l.State {
			state = i
		}
	}
	if state == 0 {
		return nil, fmt.Errorf("site: lease state %q is unknown", l.State)
	}
	buf := make([]byte, 0, 1+4+6+1+16+len(l.Subnet)+len(l.MachineID)+len(l.Hostname)+3)
	buf = append(buf, byte(CommitLease))
	buf = append(buf, ip.AsSlice()...)
	buf = append(buf, mac...)
	buf = append(buf, byte(state))
	buf = binary.BigEndian.AppendUint64(buf, unixNano(l.Starts))
	buf = binary.BigEndian.AppendUint64(buf, unixNano(l.Expires))
	for _, s := range []string{l.Subnet, l.MachineID, l.Hostname} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	return buf, nil
}

var errShortLease = errors.New("truncated")

// decodeLeaseCommit decodes a CommitLease payload.
func decodeLeaseCommit(p []byte) (*store.Lease, error) {
	if len(p) < 4+6+1+16 {
		return nil, errShortLease
	}
	ip := netip.AddrFrom4([4]byte(p[0:4]))
	l := &store.Lease{IP: ip.String(), MAC: formatMAC(p[4:10])}
	if s := int(p[10]); s > 0 && s < len(leaseStates) {
		l.State = leaseStates[s]
	} else {
		return nil, fmt.Errorf("lease state %d is unknown", s)
	}
	l.Starts = fromUnixNano(binary.BigEndian.Uint64(p[11:19]))
	l.Expires = fromUnixNano(binary.BigEndian.Uint64(p[19:27]))
	p = p[27:]
	for _, s := range []*string{&l.Subnet, &l.MachineID, &l.Hostname} {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return nil, errShortLease
		}
		*s = string(p[k : k+int(n)])
		p = p[k+int(n):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%d bytes after the lease", len(p))
	}
	return l, nil
}

// formatMAC writes 6 bytes as a MAC in the store's canonical form.
func formatMAC(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 3*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[c>>4], digits[c&0xf])
	}
	return string(out)
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (which has none).
func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromUnixNano(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// QuarantineAddress records that a host (MAC) answered the DHCP server's
// probe of ip in subnet at the proposer's clock, and keeps the address
// from every client for quarantine. It fails with errs.ErrConflict if a
// lease holds the address now.
func (p *Proposer) QuarantineAddress(ctx context.Context, subnet, ip, mac string, quarantine time.Duration) error {
	now := p.now()
	_, err := p.propose(ctx, QuarantineAddress, AddressConflict{IP: ip, Subnet: subnet, MAC: mac,
		Time: now, Until: now.Add(quarantine), By: actor(ctx, ActorDHCP)})
	return err
}
