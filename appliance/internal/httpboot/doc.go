// Package httpboot serves what network-booting machines fetch over HTTP:
// the per-machine iPXE script, the boot artifacts it names (kernels,
// initrds, iPXE binaries, OS images) and a health check.
//
// The service is unauthenticated and runs on its own listener, apart from
// the operator API: firmware and iPXE cannot present credentials. It
// therefore reads the store (its one write is a BindFirstClaim claim, at
// most one per workflow), and treats everything in a request as hostile:
//
//   - Nothing from a request reaches a script unchecked. The MAC is parsed
//     and rewritten in canonical form; the Host header must be an IP
//     address or a hostname, with an optional port; arch and platform must
//     be short lowercase tokens, and platform only chooses between fixed
//     texts. A bad value is a 400 naming the parameter, never a script.
//   - Values from the store that go into a script (machine ids, installer
//     kernel, initrd and command line) are checked again before rendering;
//     one that iPXE could read as more than a word makes the error script.
//   - Artifacts are opened through an os.Root on ArtifactDir, so no name,
//     "..", absolute path or symlink can reach a file outside it. Only
//     regular files are served; anything else is a 404.
//   - Content-addressed artifacts (images that are their sha256, an
//     installer's "sha256:" kernel and initrd) are served at
//     /artifacts/sha256/<64 hex> from the node's artifact store (package
//     artifacts keeps every artifact on every node), whole and verified
//     only. A node that does not hold one yet streams it from a peer
//     that does, over the Raft port's mutual TLS (Peers), passing Range
//     and its conditions on, so any node serves any artifact present at
//     the site; one no node holds is a 404 saying so.
//
// Scripts for the installer carry the agent's credential, and only to the
// machine it is for (package provision says how a credential is bound to
// its machine's address): with Binding BindLease, to the address an
// active lease of this appliance gives the machine's MAC (a discovery
// credential, to the address leased to the unknown MAC); with
// BindFirstClaim, where the appliance leases nothing, to the first address
// that fetches the script after the workflow began, recorded through
// Binder before the script is served. Any other address gets the error
// script saying why, with no credential; outpost_httpboot_credential_withheld_total
// counts them (Collectors).
//
// The script depends on the machine's state (see variantFor):
//
//	provisioning, deprovisioning   install      boot the installer for the machine
//	provisioned                    provisioned  boot the local disk (sanboot on BIOS, exit on EFI)
//	ready, discovered, failed      hold         exit: the firmware boots its next device
//	unknown MAC, site "discover"   discover     boot the installer with outpost.mode=discover
//	unknown MAC, site "exit"       unknown      exit
//	no usable installer, store     error        say why, wait 30 s, fetch the script again
//	  failure, not the machine's
//	  address
//
// Scripts exit with status 1, not 0: they have booted nothing, and a UEFI
// boot manager that gets success back from a boot option may stop at its
// menu instead of trying the next option (UEFI 3.1.1, EDK2's BdsDxe).
//
// A machine whose latest workflow has a W3C traceparent (package
// machinetrace) is traced: each of its fetches is a boot.fetch span under
// that trace (see trace.go), and its installer's kernel command line
// carries outpost.traceparent=<the workflow's traceparent>, checked
// like every other value, so that the agent's spans join the trace.
//
// Every script starts with "#!ipxe" and an "echo Outpost: <variant>" line,
// is sent with Cache-Control: no-store, and never leaves a machine hanging:
// on any problem the script says what is wrong, waits and fetches itself
// again, so the machine recovers without an operator once the problem is
// fixed.
package httpboot
