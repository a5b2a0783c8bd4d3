package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// Relay speaks DHCP for simulated machines as a relay agent would (RFC
// 1542): from its address, port 67, with giaddr set to that address, to
// the DHCP server's port 67; the server answers to giaddr:67. Answers are
// matched to machines by transaction id. This needs no raw sockets, and
// the requests are the ones the machines' PXE firmware would broadcast.
// One Relay serves any number of machines at once. Given several servers
// (a site's nodes), it sends every request to each, as dhcrelay does with
// several server addresses; whichever answers is the machine's.
type Relay struct {
	conn    *net.UDPConn
	servers []*net.UDPAddr
	giaddr  net.IP
	nextXID atomic.Uint32

	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	done    chan struct{}
}

// dhcpTimeouts are PXE firmware's waits for an answer before it sends its
// request again (PXE 2.1, 4, 8, 16 and 32 s); after the last it gives up.
var dhcpTimeouts = []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}

// pxeClass is option 60 of Intel's PXE ROMs on BIOS: a PXE boot.
const pxeClass = "PXEClient:Arch:00000:UNDI:002001"

// NewRelay listens on addr port 67 inside ns (addr must be one of its
// addresses) and relays to the DHCP server at server port 67, and to
// those at more (the other nodes of a site). Close it when done.
func NewRelay(ns *lab.Netns, addr, server netip.Addr, more ...netip.Addr) (*Relay, error) {
	var conn *net.UDPConn
	err := ns.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: addr.AsSlice(), Port: dhcpv4.ServerPort})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp relay: %w", err)
	}
	// Room for a whole storm's answers at once: the relay should not
	// drop what the appliance sent. Root may exceed rmem_max.
	if raw, err := conn.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20) })
	}
	r := &Relay{
		conn:    conn,
		giaddr:  addr.AsSlice(),
		waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{},
		done:    make(chan struct{}),
	}
	for _, s := range append([]netip.Addr{server}, more...) {
		r.servers = append(r.servers, &net.UDPAddr{IP: s.AsSlice(), Port: dhcpv4.ServerPort})
	}
	// Consecutive xids from a random start: unique within a storm.
	seed, _ := dhcpv4.GenerateTransactionID()
	r.nextXID.Store(binary.BigEndian.Uint32(seed[:]))
	go r.read()
	return r, nil
}

// Close stops the relay. It is safe to call more than once.
func (r *Relay) Close() error {
	r.conn.Close()
	<-r.done
	return nil
}

// read hands every BOOTREPLY to the machine waiting on its xid.
func (r *Relay) read() {
	defer close(r.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg, err := dhcpv4.FromBytes(bytes.Clone(buf[:n]))
		if err != nil || msg.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		r.mu.Lock()
		ch := r.waiting[msg.TransactionID]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- msg:
			default:
			}
		}
	}
}

// DORA runs DISCOVER, OFFER, REQUEST, ACK for mac, as a BIOS PXE ROM
// would, and returns the ACK. A NAK starts over, up to three times.
func (r *Relay) DORA(ctx context.Context, mac net.HardwareAddr) (*dhcpv4.DHCPv4, error) {
	var xid dhcpv4.TransactionID
	binary.BigEndian.PutUint32(xid[:], r.nextXID.Add(1))
	answers := make(chan *dhcpv4.DHCPv4, 8)
	r.mu.Lock()
	r.waiting[xid] = answers
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, xid)
		r.mu.Unlock()
	}()
	pxe := r.pxeOptions(mac)
	var nak string
	for range 3 {
		disc, err := dhcpv4.NewDiscovery(mac, append(pxe, dhcpv4.WithTransactionID(xid))...)
		if err != nil {
			return nil, err
		}
		offer, err := r.exchange(ctx, disc, answers, dhcpv4.MessageTypeOffer)
		if err != nil {
			return nil, err
		}
		req, err := dhcpv4.NewRequestFromOffer(offer, pxe...)
		if err != nil {
			return nil, err
		}
		ack, err := r.exchange(ctx, req, answers, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
		if err != nil {
			return nil, err
		}
		if ack.MessageType() == dhcpv4.MessageTypeAck {
			return ack, nil
		}
		nak = ack.Message()
	}
	return nil, fmt.Errorf("three NAKs, the last: %q", nak)
}

// pxeOptions are what a BIOS PXE ROM's requests carry, as the relay
// forwards them: its class and architecture, a UUID (option 97), and
// giaddr with one hop.
func (r *Relay) pxeOptions(mac net.HardwareAddr) []dhcpv4.Modifier {
	uuid := append([]byte{0, 0x5a, 0x5a, 0, 0, 0, 0, 0, 0, 0, 0}, mac...)
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(pxeClass)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, uuid),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionClassIdentifier,
			dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName),
		dhcpv4.WithRelay(r.giaddr),
	}
}

// errNoAnswer is a request that every retransmission left unanswered.
var errNoAnswer = errors.New("no answer")

// exchange sends msg and waits for an answer of one of the types want,
// sending it again after each of dhcpTimeouts.
func (r *Relay) exchange(ctx context.Context, msg *dhcpv4.DHCPv4, answers chan *dhcpv4.DHCPv4, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	pkt := msg.ToBytes()
	for _, wait := range dhcpTimeouts {
		if err := r.send(pkt); err != nil {
			return nil, fmt.Errorf("send %s: %w", msg.MessageType(), err)
		}
		if a, err := r.await(ctx, msg, answers, wait, want); a != nil || err != nil {
			return a, err
		}
	}
	return nil, fmt.Errorf("%s: %w after %d tries", msg.MessageType(), errNoAnswer, len(dhcpTimeouts))
}

// send sends pkt to every server. A server that cannot be reached (a
// node that is down) is not an error while another can.
func (r *Relay) send(pkt []byte) error {
	var errs []error
	for _, s := range r.servers {
		if _, err := r.conn.WriteToUDP(pkt, s); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(r.servers) {
		return errors.Join(errs...)
	}
	return nil
}

// await waits up to wait for an answer to msg of one of the types want;
// it returns nil, nil when none came.
func (r *Relay) await(ctx context.Context, msg *dhcpv4.DHCPv4, answers chan *dhcpv4.DHCPv4, wait time.Duration, want []dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, nil
		case a := <-answers:
			if bytes.Equal(a.ClientHWAddr, msg.ClientHWAddr) && slices.Contains(want, a.MessageType()) {
				return a, nil
			}
			// An answer to an earlier retransmission: ignore it.
		}
	}
}
