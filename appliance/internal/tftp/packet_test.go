package tftp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequest(t *testing.T) {
	tests := map[string]struct {
		packet string
		want   request
		bad    bool
	}{
		"plain":           {"\x00\x01a.efi\x00octet\x00", request{op: opRRQ, name: "a.efi", mode: "octet"}, false},
		"write":           {"\x00\x02a\x00netascii\x00", request{op: opWRQ, name: "a", mode: "netascii"}, false},
		"options":         {"\x00\x01a\x00OCTET\x00BlkSize\x001468\x00windowsize\x008\x00", request{op: opRRQ, name: "a", mode: "octet", opts: map[string]string{"blksize": "1468", "windowsize": "8"}}, false},
		"option no value": {"\x00\x01a\x00octet\x00tsize\x00", request{op: opRRQ, name: "a", mode: "octet"}, false},
		"empty name":      {"\x00\x01\x00octet\x00", request{op: opRRQ, mode: "octet"}, false},
		"no mode":         {"\x00\x01a\x00", request{}, true},
		"no final NUL":    {"\x00\x01a\x00octet", request{}, true},
		"DATA":            {"\x00\x03\x00\x01hello", request{}, true},
		"ACK":             {"\x00\x04\x00\x01", request{}, true},
		"one byte":        {"\x01", request{}, true},
		"unknown opcode":  {"\x00\x09a\x00octet\x00", request{}, true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseRequest([]byte(tt.packet))
			if (err != nil) != tt.bad {
				t.Fatalf("err %v, want error %v", err, tt.bad)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(request{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	tests := map[string]struct {
		mode   string
		opts   map[string]string
		maxBlk int
		maxWin int
		want   grant
	}{
		"none":                 {"octet", nil, 1468, 64, grant{blksize: 512, window: 1}},
		"blksize capped":       {"octet", map[string]string{"blksize": "8192"}, 1468, 64, grant{1468, 1, []option{{"blksize", "1468"}}}},
		"blksize under cap":    {"octet", map[string]string{"blksize": "1024"}, 1468, 64, grant{1024, 1, []option{{"blksize", "1024"}}}},
		"blksize 8":            {"octet", map[string]string{"blksize": "8"}, 1468, 64, grant{8, 1, []option{{"blksize", "8"}}}},
		"blksize 7 ignored":    {"octet", map[string]string{"blksize": "7"}, 1468, 64, grant{blksize: 512, window: 1}},
		"blksize junk":         {"octet", map[string]string{"blksize": "x"}, 1468, 64, grant{blksize: 512, window: 1}},
		"tsize":                {"octet", map[string]string{"tsize": "0"}, 1468, 64, grant{512, 1, []option{{"tsize", "4404"}}}},
		"window":               {"octet", map[string]string{"windowsize": "8"}, 1468, 64, grant{512, 8, []option{{"windowsize", "8"}}}},
		"window capped":        {"octet", map[string]string{"windowsize": "1000"}, 1468, 16, grant{512, 16, []option{{"windowsize", "16"}}}},
		"window past int":      {"octet", map[string]string{"windowsize": "99999999999999999999999"}, 1468, 64, grant{512, 64, []option{{"windowsize", "64"}}}},
		"window 0 ignored":     {"octet", map[string]string{"windowsize": "0"}, 1468, 64, grant{blksize: 512, window: 1}},
		"window negative":      {"octet", map[string]string{"windowsize": "-4"}, 1468, 64, grant{blksize: 512, window: 1}},
		"window huge negative": {"octet", map[string]string{"windowsize": "-99999999999999999999999"}, 1468, 64, grant{blksize: 512, window: 1}},
		"unknown and timeout":  {"octet", map[string]string{"timeout": "3", "multicast": ""}, 1468, 64, grant{blksize: 512, window: 1}},
		"all, in order": {"octet", map[string]string{"windowsize": "4", "tsize": "0", "blksize": "1468"}, 1468, 64,
			grant{1468, 4, []option{{"blksize", "1468"}, {"tsize", "4404"}, {"windowsize", "4"}}}},
		"netascii lock-step": {"netascii", map[string]string{"windowsize": "4", "tsize": "0", "blksize": "1024"}, 1468, 64,
			grant{1024, 1, []option{{"blksize", "1024"}}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := negotiate(request{op: opRRQ, name: "f", mode: tt.mode, opts: tt.opts}, tt.maxBlk, tt.maxWin, 4404)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(grant{}, option{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseRequest: any datagram parses or is refused without a panic,
// and what parses has the request's shape; the options it grants stay
// within the caps.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("\x00\x01ipxe.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00windowsize\x0064\x00"))
	f.Add([]byte("\x00\x02x\x00netascii\x00"))
	f.Add([]byte("\x00\x01a\x00octet\x00windowsize\x00"))
	f.Fuzz(func(t *testing.T, p []byte) {
		req, err := parseRequest(p)
		if err != nil {
			return
		}
		if req.op != opRRQ && req.op != opWRQ || strings.ContainsRune(req.name, 0) || req.mode != strings.ToLower(req.mode) {
			t.Fatalf("parsed %q as %+v", p, req)
		}
		g := negotiate(req, 1468, 64, 1)
		if g.blksize < minBlockSize || g.blksize > 1468 || g.window < 1 || g.window > 64 {
			t.Fatalf("%q granted %+v", p, g)
		}
		if oack := oackPacket(g.oack); len(g.oack) > 0 && !bytes.HasSuffix(oack, []byte{0}) {
			t.Fatalf("OACK %q", oack)
		}
	})
}
