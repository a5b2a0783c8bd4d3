// Package tftp is the appliance's read-only TFTP server. It hands the iPXE
// binaries (undionly.kpxe, ipxe.efi, snponly.efi) in the artifact directory
// to PXE firmware, which cannot fetch them any other way.
//
// The protocol engine is github.com/pin/tftp/v3; this package decides what
// may be read and how refusals look. Its invariants:
//
//   - Nothing is ever written. A write request (WRQ) is answered with a
//     TFTP error 2 (access violation) and no file is opened for writing.
//   - No request reaches a file outside Config.Root. A requested name is
//     first checked lexically (see resolve): empty names, NUL and other
//     control bytes, backslashes, invalid UTF-8 and any ".." component are
//     refused; leading slashes are stripped, because much firmware asks
//     for "/ipxe.efi". The name is then opened through an os.Root, so a
//     symlink that leads out of Root is refused by the kernel-facing
//     code, not by string checks. Only regular files are served; a FIFO
//     is opened non-blocking so it cannot stall a transfer.
//   - Every refusal answers the client with a TFTP error and logs the
//     client address and the requested name (escaped, truncated): error 1
//     (file not found) when the name is fine but nothing is there, error 2
//     (access violation) for everything else. Error messages sent to
//     clients are fixed strings; the reason is only in the log.
//   - At most Config.MaxTransfers transfers are under way at once (each
//     holds a socket and a file). A read request past the cap is
//     refused at once with error 0 "server busy, retry later", counted
//     (outpost_tftp_busy_total) and logged at most once per client per
//     minute: a flood of requests that are never acknowledged cannot
//     take the file descriptors the appliance's other servers need.
//     (pin/tftp opens the transfer's socket before the handler runs; a
//     refused one is closed as soon as the error is sent.)
//   - The blksize (RFC 2348) and tsize (RFC 2349) options are honoured;
//     tsize carries the size from fstat of the open file.
//   - Files are streamed: each DATA packet is read from the file straight
//     into the buffer it is sent from.
//
// pin/tftp v3.2.0 always sends error code 1 when a handler fails. For an
// access violation the server therefore first sends its own error 2 from
// the listening socket, then lets pin/tftp send its error 1 (with the
// message "access violation") from the transfer socket. Clients act on the
// first error they get; the second one changes nothing.
//
// A read by a machine whose latest workflow has a traceparent
// (Config.Traces, package machinetrace) is a tftp.read span under that
// trace, naming the file and the bytes sent (trace.go).
//
// Serve runs one pin/tftp server per socket; it may be called for several
// sockets (addresses, or IPv4 and IPv6) of one Server at once.
package tftp
