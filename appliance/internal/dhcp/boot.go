package dhcp

import (
	"bytes"
	"net/netip"
	"strings"
)

// Client architectures (option 93, RFC 4578 and the IANA registry).
const (
	archBIOS         = 0
	archEFIIA32      = 6
	archEFIx64       = 7
	archEFIBC        = 9 // EFI byte code; x86-64 firmware often sends it
	archEFIARM64     = 11
	archEFIx64HTTP   = 16
	archEFIARM64HTTP = 19
)

// BootFiles names the iPXE binaries served over TFTP (and, for UEFI HTTP
// boot clients, over HTTP under /artifacts/).
type BootFiles struct {
	BIOS   string // legacy BIOS PXE: "undionly.kpxe"
	EFIx64 string // x86-64 UEFI: "ipxe.efi" or "snponly.efi"
	// EFIARM64 is arm64 UEFI's: Debian builds no arm64 iPXE, so EDK2's own
	// PXE or HTTP boot client loads Debian's signed arm64 GRUB network
	// image ("grubaa64.efi", images/build-arm64.sh), which reads the
	// appliance's per-machine grub/arm64-efi/<MAC>.cfg.
	EFIARM64 string
	// SecureBootx64 is the signed first stage for x86-64 UEFI machines
	// whose firmware enforces Secure Boot, which refuses iPXE: Debian's
	// shim ("shimx64.efi"), which loads the signed GRUB beside it. Empty
	// gives every machine iPXE.
	SecureBootx64 string
}

// DefaultBootFiles are Debian's ipxe package's names, its shim-signed
// package's, and images/build-arm64.sh's for arm64 GRUB.
var DefaultBootFiles = BootFiles{BIOS: "undionly.kpxe", EFIx64: "ipxe.efi", EFIARM64: "grubaa64.efi", SecureBootx64: "shimx64.efi"}

// efix64 is the x86-64 UEFI boot file of a machine: shim where it has
// Secure Boot on, else iPXE.
func (f BootFiles) efix64(secureBoot func() bool) string {
	if f.SecureBootx64 != "" && secureBoot() {
		return f.SecureBootx64
	}
	return f.EFIx64
}

// bootKind says what a client is, as far as booting goes.
type bootKind int

const (
	bootNone bootKind = iota // an ordinary DHCP client (an installed OS, dhclient)
	bootPXE                  // firmware PXE: wants a binary over TFTP
	bootHTTP                 // UEFI HTTP boot: wants an http URL of an EFI binary
	bootIPXE                 // iPXE itself: wants the URL of its script
)

func (k bootKind) String() string {
	switch k {
	case bootPXE:
		return "pxe"
	case bootHTTP:
		return "http"
	case bootIPXE:
		return "ipxe"
	}
	return "none"
}

// bootRequest is what the boot decision looks at in a request.
type bootRequest struct {
	classID   string // option 60
	userClass []byte // option 77, raw
	archs     []uint16
}

// bootReply is the decision: the boot file name or URL, and the class
// identifier to answer with.
type bootReply struct {
	kind     bootKind
	file     string
	classID  string // "PXEClient", "HTTPClient" or ""
	vendorOK bool   // send PXE vendor options (option 43)
}

// isIPXE reports whether option 77 says the client is iPXE. iPXE sends the
// bare string "iPXE"; RFC 3004 clients prefix it with its length.
func isIPXE(userClass []byte) bool {
	return bytes.Equal(userClass, []byte("iPXE")) || bytes.Equal(userClass, []byte("\x04iPXE"))
}

// chooseBoot decides the boot file for a request. server is the address of
// the answering node, httpPort its boot HTTP port, mac the client's.
// secureBoot is the client's machine's setting (store.Machine.SecureBoot):
// UEFI PXE does not tell in DHCP. It is asked only of x86-64 UEFI
// firmware, so a proxy that has not read the client's machine reads it
// only then.
func chooseBoot(req bootRequest, files BootFiles, server netip.Addr, httpPort int, mac string, secureBoot func() bool) bootReply {
	base := "http://" + netip.AddrPortFrom(server, uint16(httpPort)).String()
	if isIPXE(req.userClass) {
		// Already iPXE: hand it its script, never another iPXE binary
		// (that would loop).
		return bootReply{kind: bootIPXE, file: base + "/ipxe/" + mac + ".ipxe"}
	}
	pxe := strings.HasPrefix(req.classID, "PXEClient")
	http := strings.HasPrefix(req.classID, "HTTPClient")
	if !pxe && !http {
		return bootReply{kind: bootNone}
	}
	arch := -1
	if len(req.archs) > 0 {
		arch = int(req.archs[0])
	}
	if http || arch == archEFIx64HTTP || arch == archEFIARM64HTTP {
		var file string
		if arch == archEFIARM64HTTP || arch == archEFIARM64 {
			file = files.EFIARM64
		} else {
			file = files.efix64(secureBoot)
		}
		return bootReply{kind: bootHTTP, file: base + "/artifacts/" + file, classID: "HTTPClient"}
	}
	var file string
	switch arch {
	case archEFIx64, archEFIBC:
		file = files.efix64(secureBoot)
	case archEFIIA32:
		file = files.EFIx64
	case archEFIARM64:
		file = files.EFIARM64
	default: // BIOS, or no option 93 (old PXE ROMs)
		file = files.BIOS
	}
	return bootReply{kind: bootPXE, file: file, classID: "PXEClient", vendorOK: true}
}

// pxeVendorOptions is option 43 for PXE clients: discovery control (sub-
// option 6) = 8, "boot from the file name in this offer, do not wait for a
// proxyDHCP offer or do boot server discovery".
var pxeVendorOptions = []byte{6, 1, 8, 255}

// ipxeNoProxyDHCP is option 175's payload for iPXE clients: sub-option 176
// (no-pxedhcp) set to 1.
var ipxeNoProxyDHCP = []byte{176, 1, 1}
