// Package bmc presses a machine's buttons through its baseboard management
// controller: power on, power off (hard), power cycle, power status, the
// next boot from the network (PXE, once or persistent, BIOS or EFI) or
// from the CD drive, and, over Redfish, virtual media: an image the BMC
// fetches over HTTP(S) into its virtual CD drive (InsertMedia; its URL,
// which may be a secret, never appears in an error or a log line).
//
// It speaks to BMCs through bmclib (github.com/bmc-toolbox/bmclib/v2):
// IPMI through bmclib's ipmitool provider, which runs the ipmitool program
// (Debian package ipmitool), and Redfish through its gofish provider. A
// Provider is one such way to one BMC, one attempt per call; tests and
// other back ends may supply their own.
//
// A Pool is what the appliance uses. For every operation it:
//
//   - takes the BMC's own lock: one operation at a time per BMC address,
//     held for the whole operation, retries included;
//   - takes a site-wide slot (Config.Concurrency) for each attempt, and
//     gives it back while it waits to retry, so that a dead BMC holds at
//     most one slot and delays no other BMC beyond it;
//   - tries the drivers in order, each attempt bounded by Config.Timeout:
//     the one the credentials name ("ipmi" or "redfish"), or Config.Order
//     (Redfish, then IPMI) when they name none;
//   - retries with exponential backoff and jitter (Config.Attempts,
//     Config.Backoff, Config.MaxBackoff), except when the BMC refused the
//     credentials (ErrAuth: retrying could lock the account), the boot
//     device (ErrBootDeviceRefused) or its certificate (ErrCertificate).
//
// Errors are *Error: they name the BMC's address and the operation, say
// what failed (errors.Is with ErrAuth, ErrUnreachable, ErrTimeout or
// ErrBootDeviceRefused, or the caller's context error) and what each
// driver said. For IPMI, ipmitool says "Unable to establish IPMI v2 /
// RMCP+ session" both for a wrong password and for a BMC that is not
// there; the package then sends the BMC an IPMI ping (Get Channel
// Authentication Capabilities, which needs no session) to tell a BMC that
// answers but refuses the session (ErrAuth) from one that does not answer
// (ErrUnreachable).
//
// A BMC that refuses to set the boot device gives ErrBootDeviceRefused
// (ipmi_sim does so, with "Invalid data field in request"); the caller
// records it as a warning and power-cycles anyway. PowerCycle of a machine
// that is off powers it on.
//
// # Passwords
//
// Credentials carry the password in the clear, unsealed by the caller for
// the call. It never appears in an error (the text of every error is also
// scrubbed of it), in a log line (the Pool logs addresses, operations and
// errors only; bmclib's own logger is a discarding one), or in the
// printed, logged or JSON form of Credentials, which redact it.
//
// How the password reaches ipmitool: bmclib runs ipmitool with -E, which
// reads the password from the environment variable IPMITOOL_PASSWORD, set
// in ipmitool's environment only (bmclib gives it no other variable). It
// is not on the command line, so ps and /proc/PID/cmdline do not show it;
// /proc/PID/environ does, to root and to the appliance's own user, for the
// fraction of a second ipmitool runs. That is the known exposure.
//
// How the password reaches a Redfish BMC: only over a TLS connection
// whose certificate is trusted (see Certificates), in the session request
// (or Basic authentication) that bmclib's gofish provider sends.
//
// bmclib dumps all Redfish traffic, session requests with their
// passwords included, to standard output when DEBUG_BMCLIB=true is in the
// environment; the Redfish driver refuses to run then.
//
// # Certificates
//
// BMCs make their own certificates, which no public CA signs, and bmclib
// skips verification unless told otherwise. The Redfish driver gives
// bmclib an HTTP client of its own (certCheck) whose TLS handshake trusts
// a certificate only if its fingerprint (Fingerprint: the SHA-256 of the
// certificate) is the one the credentials carry, which an operator
// accepted, or if the site's BMC CA (Config.RootCAs) issued it for the
// BMC's address. Anything else fails the handshake, before any request
// is sent: the BMC gets neither the session request nor the password.
// The operation then fails with ErrCertificate, and Error.Certificate is
// the fingerprint the BMC presented, for the operator to check and
// accept. It is not retried, and no other driver is tried: falling back
// to IPMI would hand the password to whoever made Redfish fail. The
// client follows redirects only to the same BMC over HTTPS.
//
// IPMI has no TLS: ipmitool's lanplus session (RAKP) does not send the
// password, but its traffic is readable and its handshake can be
// attacked offline by anyone on the out-of-band network. Prefer Redfish.
//
// # Known limits
//
// Redfish is tested against the lab's Redfish BMC (lab.RedfishBMC, a
// Redfish service written for the tests: sessions, one system's power,
// reset and boot override, a virtual CD drive), which drives a real QEMU
// VM through QMP and which redfishtool and sushy, Redfish clients the
// project did not write, accept (lab.TestRedfishConformance); not
// against a vendor's BMC. A retried power cycle whose first attempt reached the BMC
// but whose answer was lost cycles the machine twice. IPMI uses cipher
// suite 3, then 17 (bmclib's choice).
package bmc
