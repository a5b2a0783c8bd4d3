// Package linklocal holds the metadata address, 169.254.169.254, on the
// leader of a site and serves the metadata service there on port 80,
// where a stock cloud image's cloud-init looks (its Ec2 datasource's
// default URL, http://169.254.169.254).
//
// # Invariants
//
//   - Only a leader holds the address. A Holder takes it when told the
//     node leads (SetLeader(true), from the cluster's leadership
//     callback) and gives it up when told it no longer does, and when
//     Run ends. Followers never hold it, so nodes of one segment never
//     answer ARP for it together while they run.
//   - The address is held with a lifetime (Config.Lifetime, a few
//     seconds) that the leader renews, so that a node whose process dies
//     (SIGKILL, a crash) stops answering ARP for it within that time,
//     with nothing left to clean up: the kernel removes an expired
//     address by itself.
//   - On taking the address the Holder announces it with gratuitous ARP
//     (an ARP request whose sender and target are the address, RFC
//     5227's announcement) on each interface, at once and twice more on
//     the next renewals, so that the machines' ARP caches move to the new
//     leader's MAC without waiting for their entries to go stale.
//   - The address is added with link scope, so the node never picks it
//     as the source of its own traffic.
//   - A failure to take the address (no CAP_NET_ADMIN, no such
//     interface, port 80 taken) is logged with what failed and retried at
//     each renewal while the node leads; it stops nothing else.
//
// Machines on the appliance's own segment reach the address by ARP once
// they route it on-link; DHCP option 121 gives them that route (package
// dhcp), and relayed machines a route through their relay, which must
// route it to the appliance.
package linklocal
