// Package sol holds the site's serial consoles: serial-over-LAN (SOL)
// sessions through each machine's BMC (IPMI 2.0 payload instance 1,
// with github.com/bougou/go-ipmi), shared by whoever watches them.
//
// # Sessions
//
// A Manager runs on every node; only the Raft leader holds sessions
// (Attach elsewhere is ErrNotLeader: the API sends the viewer to the
// leader). A machine has at most one session, opened by the first
// Attach, and any number of Viewers. Every viewer first reads the
// scrollback (the last Config.Scrollback bytes the console printed since
// the session opened, 256 KiB by default, so that a technician who
// opens the console late sees the last boot messages), then the live
// bytes. The scrollback may begin in the middle of a line, an escape
// sequence or a UTF-8 character; a terminal recovers at the next one.
//
// A session outlives its viewers: once the last one leaves it stays
// open Config.Linger (5 minutes by default), gathering scrollback, so
// that a closed browser tab loses nothing, then closes. When the BMC
// link fails (a timeout, the BMC restarting, another tool taking the
// payload) the session opens it again, on the schedule of
// Config.Backoff, for as long as it lasts; viewers stay attached and see
// the state change (Viewer.Status). Bytes the console printed while the
// link was down are lost: the BMC keeps none.
//
// # Leadership
//
// Sessions live on the leader because one BMC serves one SOL payload at
// a time: two nodes opening it would take it from each other in turn.
// When this node stops leading (Run watches, and a session checks again
// before each reconnection) every session closes and its viewers end
// with ErrNotLeader; the new leader opens its own on the next Attach,
// taking the payload over at the BMC if the old leader could not
// release it (it died). A session takes the payload over from any
// holder, another tool's too: to use ipmitool's console instead, close
// the viewers and let the session linger out. The scrollback a node held is lost with its
// leadership: a new session's Status.Since says from when its
// scrollback runs, and nothing older is shown.
//
// # The keyboard
//
// Anyone attached reads; one viewer at a time writes. Who may ask to
// write is the caller's decision (the API lets operators); Attach with
// writer set gives the keyboard to the new viewer and takes it from the
// one that had it, which is told so in its Status.Notice and gets
// ErrReadOnly if it types. A new writer takes over rather than being
// refused because the one who asks is the one at the keyboard now: a
// writer who left a tab open on another laptop, or whose browser lost
// its connection without closing it, would otherwise lock every
// operator out until the session closed. Keystrokes are never queued:
// while the link is down Write fails with ErrNotConnected.
//
// # Secrets
//
// The BMC password is read from the store sealed with the site key and
// opened for each connection, kept only by that connection. It is never
// logged, never in an error or a Status (errors from the BMC library
// are scrubbed of it before they are kept), and Target hides it from
// every fmt verb and from slog. IPMI 2.0 authenticates both ends with
// the password (RAKP) and never sends it.
//
// # Invariants
//
//   - A machine has at most one session per Manager, and only while the
//     node leads.
//   - A viewer holds at most Config.Scrollback bytes it has not read (or
//     one read from the BMC, 4 KiB, if that is more); one that falls
//     further behind ends with ErrTooSlow (it can attach again and read
//     the scrollback).
//   - Close returns once every session has closed its BMC link.
package sol
