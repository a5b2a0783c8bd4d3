package dhcp

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestNewReply: newReply builds the bytes dhcpv4.NewReplyFromRequest
// builds, relay information and client identifier echoed, for requests
// with and without them.
func TestNewReply(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	tests := map[string][]dhcpv4.Modifier{
		"plain":   nil,
		"relayed": {dhcpv4.WithGatewayIP(net.IPv4(198, 18, 7, 1)), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'e', 't', 'h'}))},
		"client id": {dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 0, 0, 0, 0, 9})),
			dhcpv4.WithBroadcast(true)},
	}
	for name, mods := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := dhcpv4.NewDiscovery(mac, mods...)
			if err != nil {
				t.Fatal(err)
			}
			replyMods := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithYourIP(net.IPv4(198, 18, 7, 20))}
			want, err := dhcpv4.NewReplyFromRequest(req, replyMods...)
			if err != nil {
				t.Fatal(err)
			}
			got := newReply(req, replyMods...)
			if diff := cmp.Diff(want.ToBytes(), got.ToBytes()); diff != "" {
				t.Errorf("newReply differs from NewReplyFromRequest (-want +got):\n%s\n%s", diff, got.Summary())
			}
		})
	}
}

// TestRequestLogger: a request's attributes come first in what is
// logged, formatted as With would, and nothing is formatted for a
// record below the level.
func TestRequestLogger(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	xid := dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}
	log := requestLogger(base, slog.String("mac", "02:00:00:00:00:09"), slog.Any("xid", xidValue(xid)), slog.Any("type", typeValue(dhcpv4.MessageTypeRequest)))
	log.Debug("not logged", "ip", "198.18.7.20")
	log.Info("dhcp: lease", "ip", "198.18.7.20")
	log.With("k", "v").Warn("with")
	want := `level=INFO msg="dhcp: lease" mac=02:00:00:00:00:09 xid=0xdeadbeef type=REQUEST ip=198.18.7.20
level=WARN msg=with mac=02:00:00:00:00:09 xid=0xdeadbeef type=REQUEST k=v
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if strings.Contains(buf.String(), "not logged") {
		t.Error("a debug record was logged at info")
	}
}
