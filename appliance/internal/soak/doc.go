// Package soak is the logic of `make soak`, a compressed day of
// provisioning under faults (outpost-bench's soak benchmark runs it
// against real processes): the seeded fault schedule (Schedule), the
// invariants checked while it runs and at its end (Checker), and the
// report drawn from what it measured (Report, its JSON and SVG).
//
// Nothing here starts a process or touches the network: the benchmark
// does, and feeds what it saw (ACKs the simulated machines got, orders
// placed and ended, the site's and central's events, /proc samples of
// the daemons) to a Checker, which names every broken invariant.
//
// Invariants:
//
//   - No address is ACKed to a MAC while another MAC holds it (a MAC
//     holds the address of its last ACK until its machine's
//     deprovision succeeds), and at the end every address held agrees
//     with the site's lease table.
//   - Central stores the site's events densely from 1, none twice, each
//     as the site recorded it, up to the site's last.
//   - Every order placed ends; a failed one only when the schedule put
//     a fault against its machine while it ran, the failure's reason
//     naming that fault's kind of failure.
//   - Each machine's state at the site at the end is the one its
//     events explain (central's fleet model, derived from them alone).
//   - No file-descriptor or goroutine growth and a bounded RSS in each
//     daemon process that lived through the run.
//   - After each provision of a real VM that succeeded, the test OS it
//     wrote boots and reports the hostname and instance id the metadata
//     service gave it.
//
// Real VMs (QEMU behind their own ipmi_sim) may be among the machines:
// a schedule's targeted faults hit them only of the VMKinds, which a
// real machine lives through in a soak's time, and the report counts
// their provisions apart (Report.CountVMs).
package soak
