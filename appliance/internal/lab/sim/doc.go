// Package sim simulates the peers of an Outpost appliance, or of
// central, in numbers no lab of VMs could reach: machines that network
// boot and run their workflow, the installer's agent, a DHCP relay, and
// sites syncing with central. Each speaks the real protocol over real
// sockets, so what it loads and checks is the real server: a benchmark
// (outpost-bench provision.storm and sync.sites) runs a thousand of them
// and times them; a test runs one or a few and checks what they got.
//
// The simulators:
//
//   - Relay is a DHCP relay agent (RFC 1542) on port 67 of an address in
//     a namespace. Relay.DORA runs a BIOS PXE ROM's DISCOVER, OFFER,
//     REQUEST, ACK for a MAC, with the ROM's options and retransmissions,
//     through it; one Relay carries the DHCP of any number of machines,
//     so no raw sockets are needed. Given a site's nodes, it sends each
//     request to all of them, as dhcrelay does.
//   - Env.Provision walks one Machine through its network boot and its
//     workflow as its firmware, iPXE and the installer would: DHCP
//     through the Relay, the iPXE binary over TFTP, its iPXE script
//     (parsed by ParseInstallScript), the first bytes of the installer's
//     kernel and initrd, then the Agent. It checks each answer (the boot
//     file and next server, the sizes against Artifacts, that the script
//     is this machine's) and returns a Result timed by Phase. Env.Storm
//     provisions many at once and returns their Outcome; Env.Progress
//     says how far they are meanwhile. Against a site of several nodes
//     (Env.Servers), machines carry on when one dies as real ones do:
//     the firmware starts its network boot over (Env.NetbootRetries) and
//     the agent finds the appliance again through DHCP (Env.Rediscover).
//   - Agent is the installer's agent without a disk: it runs a workflow
//     over the agent API, reporting start, progress and finish, and
//     downloads and checks the image of image.write; it retries what the
//     real agent retries.
//   - Site is a site's sync client without an appliance: a syncproto
//     websocket to central that heartbeats, acknowledges revisions and
//     hands their changes to its caller.
//
// The network. Net is two namespaces joined by a veth pair in
// 198.18.0.0/16: the server under test in Net.Server at ServerAddr, the
// simulated machines and their Relay in Net.Client at ClientAddr.
// Artifacts makes the directory the appliance serves them, and the image
// records to store for it. The namespaces go away, with what runs in
// them, when the lab.T that made them ends: a test's, or a lab.Runner's
// in a benchmark.
//
// The appliance must run in Net.Server as a whole process: applianced,
// or the test binary started again there (see TestProvision's TestMain).
// An appliance inside the test's own process cannot be put there with
// lab.Netns.Do: the sockets app.Run binds at start would be, but the TFTP
// server opens one more socket per transfer later, outside.
//
// A test that boots a machine (TestProvision is one):
//
//	n := sim.NewNet(t)
//	art, err := sim.NewArtifacts(src, dir)
//	// ... start an appliance in n.Server with DHCP on sim.ServerIface,
//	// TFTP and boot HTTP (port 8080) on sim.ServerAddr, serving art.Dir;
//	// store art.Installer, art.OSImage, the machine and its workflow ...
//	server := netip.MustParseAddr(sim.ServerAddr)
//	relay, err := sim.NewRelay(n.Client, netip.MustParseAddr(sim.ClientAddr), server)
//	...
//	defer relay.Close()
//	env := &sim.Env{Netns: n.Client, Relay: relay, Server: server, BootPort: 8080, Artifacts: art}
//	if r := env.Provision(ctx, m); r.Err != nil {
//		t.Fatalf("%s: phase %s: %v", r.ID, r.Phase, r.Err)
//	}
//
// Needs: root for the namespaces (lab.Require says so, and fails rather
// than skips when CI is set); nothing else. The simulators keep to the
// namespaces and loopback they are given.
package sim
