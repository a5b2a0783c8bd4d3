package dhcp

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChooseBoot(t *testing.T) {
	server := netip.MustParseAddr("198.18.0.1")
	const mac = "52:54:00:12:34:56"
	tests := map[string]struct {
		req  bootRequest
		want bootReply
	}{
		"plain client": {bootRequest{}, bootReply{kind: bootNone}},
		"bios pxe": {
			bootRequest{classID: "PXEClient:Arch:00000:UNDI:002001", archs: []uint16{archBIOS}},
			bootReply{kind: bootPXE, file: "undionly.kpxe", classID: "PXEClient", vendorOK: true},
		},
		"pxe without option 93": {
			bootRequest{classID: "PXEClient"},
			bootReply{kind: bootPXE, file: "undionly.kpxe", classID: "PXEClient", vendorOK: true},
		},
		"uefi x64": {
			bootRequest{classID: "PXEClient:Arch:00007:UNDI:003000", archs: []uint16{archEFIx64}},
			bootReply{kind: bootPXE, file: "ipxe.efi", classID: "PXEClient", vendorOK: true},
		},
		"uefi bc": {
			bootRequest{classID: "PXEClient:Arch:00009:UNDI:003000", archs: []uint16{archEFIBC}},
			bootReply{kind: bootPXE, file: "ipxe.efi", classID: "PXEClient", vendorOK: true},
		},
		"uefi arm64": {
			bootRequest{classID: "PXEClient:Arch:00011:UNDI:003000", archs: []uint16{archEFIARM64}},
			bootReply{kind: bootPXE, file: "grubaa64.efi", classID: "PXEClient", vendorOK: true},
		},
		"uefi http x64": {
			bootRequest{classID: "HTTPClient:Arch:00016:UNDI:003001", archs: []uint16{archEFIx64HTTP}},
			bootReply{kind: bootHTTP, file: "http://198.18.0.1:8080/artifacts/ipxe.efi", classID: "HTTPClient"},
		},
		"uefi http arm64": {
			bootRequest{classID: "HTTPClient:Arch:00019:UNDI:003001", archs: []uint16{archEFIARM64HTTP}},
			bootReply{kind: bootHTTP, file: "http://198.18.0.1:8080/artifacts/grubaa64.efi", classID: "HTTPClient"},
		},
		"ipxe (raw user class)": {
			bootRequest{classID: "PXEClient:Arch:00000:UNDI:002001", userClass: []byte("iPXE"), archs: []uint16{archBIOS}},
			bootReply{kind: bootIPXE, file: "http://198.18.0.1:8080/ipxe/52:54:00:12:34:56.ipxe"},
		},
		"ipxe (rfc 3004 user class)": {
			bootRequest{classID: "PXEClient:Arch:00007:UNDI:003010", userClass: []byte("\x04iPXE"), archs: []uint16{archEFIx64}},
			bootReply{kind: bootIPXE, file: "http://198.18.0.1:8080/ipxe/52:54:00:12:34:56.ipxe"},
		},
		"other user class is not ipxe": {
			bootRequest{classID: "PXEClient:Arch:00000", userClass: []byte("iPXE-fake")},
			bootReply{kind: bootPXE, file: "undionly.kpxe", classID: "PXEClient", vendorOK: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := chooseBoot(tc.req, DefaultBootFiles, server, 8080, mac, func() bool { return false })
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(bootReply{})); diff != "" {
				t.Errorf("chooseBoot (-want +got):\n%s", diff)
			}
		})
	}
}
