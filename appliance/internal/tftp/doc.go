// Package tftp is the appliance's read-only TFTP server. It hands the iPXE
// binaries (undionly.kpxe, ipxe.efi, snponly.efi) in the artifact directory
// to PXE firmware, which cannot fetch them any other way.
//
// The server is its own protocol engine: it reads requests from the
// listening socket, negotiates options and sends each file from a socket
// of its own (sender.go). It used github.com/pin/tftp/v3 for this until
// windowsize: pin/tftp v3.2.0 (in go.mod; the module proxy lists nothing
// newer) does not negotiate it, and shows a read handler neither the
// request's options nor the transfer's socket, so a window cannot be
// added around it. pin/tftp's netascii converter is still used for
// netascii reads. Its invariants:
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
//   - Every refusal answers the client with one TFTP error, from the
//     listening socket and the address the request was sent to, and logs
//     the client address and the requested name (escaped, truncated):
//     error 1 (file not found) when the name is fine but nothing is
//     there, error 2 (access violation) for everything else. Error
//     messages sent to clients are fixed strings; the reason is only in
//     the log. No transfer socket is opened for a refused request.
//   - At most Config.MaxTransfers transfers are under way at once (each
//     holds a socket and a file). A read request past the cap is
//     refused at once with error 0 "server busy, retry later", counted
//     (outpost_tftp_busy_total) and logged at most once per client per
//     minute: a flood of requests that are never acknowledged cannot
//     take the file descriptors the appliance's other servers need.
//   - Options (RFC 2347; names in any case) are granted in an OACK, and
//     only those asked for: blksize (RFC 2348, 8..65464) capped by the
//     MTU of the interface the request came in on and by
//     Config.MaxBlockSize; tsize (RFC 2349) from fstat of the open file;
//     windowsize (RFC 7440) capped by Config.MaxWindow. A value that does
//     not parse, or is below its range, is left out of the OACK, so the
//     client falls back to the default. Other options are ignored.
//   - A transfer with a window of n sends up to n blocks, then waits for
//     an ACK. An ACK of the last block sent, or of an earlier one (the
//     block after it was lost), starts the next window after it; an ACK
//     outside the window is ignored. With no ACK within Config.Timeout the
//     window is sent again, up to Config.Retries times in a row, then the
//     transfer ends with an error to the client. A window of 1 (no
//     windowsize asked) is RFC 1350's lock-step, where a duplicate ACK
//     sends nothing, so duplicates cannot double every packet (the
//     Sorcerer's Apprentice). Block numbers wrap past 65535. Blocks sent
//     again are counted (outpost_tftp_resent_total) and logged with the
//     transfer.
//   - Files are streamed: each DATA packet is read from the file at its
//     offset (pread) straight into the buffer it is sent from, and a
//     window sent again is read again, so no window is held in memory.
//     netascii reads are converted as a stream and always lock-step.
//
// A read by a machine whose latest workflow has a traceparent
// (Config.Traces, package machinetrace) is a tftp.read span under that
// trace, naming the file and the bytes sent (trace.go).
//
// Serve may be called for several sockets (addresses, or IPv4 and IPv6)
// of one Server at once.
package tftp
