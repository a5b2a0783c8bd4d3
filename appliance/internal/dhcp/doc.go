// Package dhcp is the appliance's DHCPv4 server: addresses for known and
// (where a subnet allows discovery) unknown machines, and the boot
// information that takes a server's firmware to iPXE and iPXE to its
// script.
//
// Invariants:
//
//   - Only the Raft leader answers, once its store holds everything earlier
//     leaders committed (Leader.IsReadyLeader). In a site of three appliances on one
//     network every node hears every request; the followers stay silent, so
//     exactly one node answers and its own address is the server
//     identifier and next-server of the reply.
//   - A lease is committed through Raft before its ACK is sent. The store's
//     state machine refuses a lease for an address another MAC holds, so an
//     address is never given to two MACs, even across a change of leader;
//     such a refusal becomes a NAK.
//   - An offer is committed before it is sent: a lease in state offered,
//     until the end of its hold (Config.OfferHold), through the same
//     group commit as the REQUESTs' leases, in a goroutine of its own
//     (not on a worker). A new leader builds its allocators from the
//     store, so it neither offers that address to another MAC within the
//     offer's lifetime nor refuses the client's REQUEST for it. No commit
//     is made for a client's reservation (never another MAC's) or an
//     address the store already holds for the client past the hold (a
//     retransmitted DISCOVER, a client that rebooted). An offer whose
//     commit fails is not sent: the client retransmits.
//   - Address choice (package ipam) is in-memory and rebuilt from the store
//     whenever this node gains leadership or the store's IPAM generation
//     moves (a subnet, a machine's interfaces or an operator's lease delete).
//   - Before an address no lease holds is offered to a client on the
//     link of the interface its DISCOVER came in on, it is probed
//     (probe.go: ARP, RFC 5227, sender address 0.0.0.0; Config.ProbeWait
//     at most, in the offer's goroutine, never on a worker; an address
//     that stayed silent is not probed again for a minute). A host that
//     answers gets the address quarantined for every client
//     (Config.ConflictQuarantine, through site's QuarantineAddress, so a
//     new leader knows) with a dhcp.address_conflict event naming the
//     address, the host's MAC and the subnet, and another address is
//     chosen. A relayed subnet (giaddr set) is never probed: its clients
//     are not on this node's link, and an ARP probe does not cross the
//     relay.
//   - Nothing on the packet path waits on anything but the local Raft
//     commit and, for an offer, its bounded probe: no pings, no DNS. Packets are read by one goroutine per socket
//     and decided by a small pool of workers (a few per CPU), which never
//     wait for a commit: a REQUEST's lease is committed on a committer
//     goroutine (idle ones wait for the next commit; Config.Commits
//     bound them), which sends the ACK when the commit lands. When the queue or the commits are full,
//     packets are dropped (the client retransmits) rather than queued
//     without bound.
//   - Tracing adds no store read to the packet path: a known machine's
//     trace (its latest workflow's traceparent, package machinetrace) is
//     cached per version of the machine the packet's read returns, and
//     only a traced machine's exchange is a span (trace.go).
//   - A malformed packet, or one for a subnet the site does not serve, is
//     dropped with a debug log and changes nothing.
package dhcp
