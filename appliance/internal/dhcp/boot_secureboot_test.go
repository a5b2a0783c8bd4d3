package dhcp

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestChooseBootSecureBoot checks the boot file of machines with Secure
// Boot on: Debian's shim where the firmware is x86-64 UEFI, iPXE as
// before for every other machine and firmware.
func TestChooseBootSecureBoot(t *testing.T) {
	server := netip.MustParseAddr("198.18.0.1")
	const sbMAC, otherMAC = "52:54:00:00:00:01", "52:54:00:00:00:02"
	files := DefaultBootFiles
	noShim := files
	noShim.SecureBootx64 = ""
	pxe := func(file string) bootReply {
		return bootReply{kind: bootPXE, file: file, classID: "PXEClient", vendorOK: true}
	}
	efiPXE := bootRequest{classID: "PXEClient:Arch:00007:UNDI:003000", archs: []uint16{archEFIx64}}
	tests := map[string]struct {
		req   bootRequest
		files BootFiles
		mac   string
		want  bootReply
	}{
		"uefi x64, secure boot":  {efiPXE, files, sbMAC, pxe("shimx64.efi")},
		"uefi x64, other":        {efiPXE, files, otherMAC, pxe("ipxe.efi")},
		"uefi x64, no shim file": {efiPXE, noShim, sbMAC, pxe("ipxe.efi")},
		"uefi bc, secure boot": {
			bootRequest{classID: "PXEClient:Arch:00009:UNDI:003000", archs: []uint16{archEFIBC}}, files, sbMAC, pxe("shimx64.efi"),
		},
		"uefi ia32, secure boot (no 32-bit shim)": {
			bootRequest{classID: "PXEClient:Arch:00006:UNDI:003000", archs: []uint16{archEFIIA32}}, files, sbMAC, pxe("ipxe.efi"),
		},
		"bios, secure boot setting": {
			bootRequest{classID: "PXEClient:Arch:00000:UNDI:002001", archs: []uint16{archBIOS}}, files, sbMAC, pxe("undionly.kpxe"),
		},
		"uefi http x64, secure boot": {
			bootRequest{classID: "HTTPClient:Arch:00016:UNDI:003001", archs: []uint16{archEFIx64HTTP}}, files, sbMAC,
			bootReply{kind: bootHTTP, file: "http://198.18.0.1:8080/artifacts/shimx64.efi", classID: "HTTPClient"},
		},
		"uefi http arm64, secure boot": {
			bootRequest{classID: "HTTPClient:Arch:00019:UNDI:003001", archs: []uint16{archEFIARM64HTTP}}, files, sbMAC,
			bootReply{kind: bootHTTP, file: "http://198.18.0.1:8080/artifacts/grubaa64.efi", classID: "HTTPClient"},
		},
		"ipxe itself, secure boot setting": {
			bootRequest{classID: "PXEClient:Arch:00007:UNDI:003000", userClass: []byte("iPXE"), archs: []uint16{archEFIx64}}, files, sbMAC,
			bootReply{kind: bootIPXE, file: "http://198.18.0.1:8080/ipxe/52:54:00:00:00:01.ipxe"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := chooseBoot(tc.req, tc.files, server, 8080, tc.mac, func() bool { return tc.mac == sbMAC })
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(bootReply{})); diff != "" {
				t.Errorf("chooseBoot (-want +got):\n%s", diff)
			}
		})
	}
}
