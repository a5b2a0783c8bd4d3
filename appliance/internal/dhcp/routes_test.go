package dhcp

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestMetadataRoutes checks option 121's bytes (RFC 3442: width, the
// significant octets of the destination, the router).
func TestMetadataRoutes(t *testing.T) {
	for name, tc := range map[string]struct {
		giaddr  string
		gateway string
		want    []byte
	}{
		"on-link, no gateway": {
			want: []byte{32, 169, 254, 169, 254, 0, 0, 0, 0},
		},
		"on-link, with a gateway: it becomes the default route": {
			gateway: "198.18.0.1",
			want:    []byte{32, 169, 254, 169, 254, 0, 0, 0, 0, 0, 198, 18, 0, 1},
		},
		"relayed, no gateway: through the relay": {
			giaddr: "198.19.0.1",
			want:   []byte{32, 169, 254, 169, 254, 198, 19, 0, 1},
		},
		"relayed, with a gateway: through it": {
			giaddr:  "198.19.0.1",
			gateway: "198.19.0.254",
			want:    []byte{32, 169, 254, 169, 254, 198, 19, 0, 254, 0, 198, 19, 0, 254},
		},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := dhcpv4.New()
			if err != nil {
				t.Fatal(err)
			}
			if tc.giaddr != "" {
				req.GatewayIPAddr = net.ParseIP(tc.giaddr)
			}
			got := dhcpv4.OptClasslessStaticRoute(metadataRoutes(req, tc.gateway)...).Value.ToBytes()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("option 121 (-want +got):\n%s", diff)
			}
			// What a client decodes is what was meant.
			var back dhcpv4.Routes
			if err := back.FromBytes(got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if back[0].Dest.String() != "169.254.169.254/32" {
				t.Errorf("first route to %s, want 169.254.169.254/32", back[0].Dest)
			}
		})
	}
}
