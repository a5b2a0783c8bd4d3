// Package bmc presses a machine's buttons through its baseboard management
// controller: power on, power off (hard), power cycle, power status, and
// the next boot from the network (PXE, once or persistent, BIOS or EFI).
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
//     credentials (ErrAuth: retrying could lock the account) or the boot
//     device (ErrBootDeviceRefused).
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
// bmclib dumps all Redfish traffic, session requests with their
// passwords included, to standard output when DEBUG_BMCLIB=true is in the
// environment; the Redfish driver refuses to run then.
//
// # Known limits
//
// Redfish is tested here against a fake HTTPS server only (a refusal and
// an address nobody listens on), not against a real BMC or a Redfish
// simulator. A retried power cycle whose first attempt reached the BMC
// but whose answer was lost cycles the machine twice. IPMI uses cipher
// suite 3, then 17 (bmclib's choice).
package bmc
