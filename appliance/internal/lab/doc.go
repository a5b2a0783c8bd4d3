// Package lab runs Outpost's tests against real peers on one Linux host:
// network namespaces joined by bridges, taps and veth pairs; long-running
// daemons (applianced, dnsmasq, kea-dhcp4, ipmi_sim) inside them; and QEMU
// virtual machines whose SeaBIOS or OVMF firmware network-boots from a
// server in the namespace. It is a test-helper library: every function takes
// a T, fails the test on errors, and registers cleanup so that
// namespaces, processes and VMs are gone when the test ends, passed or
// failed.
//
// Requirements. The lab needs root, iproute2, QEMU and friends. Require
// checks them and names the Debian package that is missing; with the CI
// environment variable set a missing requirement fails the test, otherwise
// it skips it. NewNetns, StartVM and Images call Require themselves.
//
// Addresses. Tests use loopback and the namespaces they create, and inside
// those only the benchmarking range 198.18.0.0/15. Nothing is sent anywhere
// else.
//
// Processes. StartProcess runs a command in its own process group with
// stdout and stderr captured to files in the test's temporary directory
// (for a program, in the directory of Runner.KeepLogs if it keeps them).
// When the test ends the group is killed with SIGKILL and reaped; if the
// test failed, the last lines of the output are logged. Deleting a
// namespace also kills whatever still runs inside it.
//
// Waiting for output. Process.WaitForLine and VM.WaitSerial work like
// expect: each call scans the lines not yet consumed, in order, and a match
// consumes every line of its stream up to and including the one that
// matched. Waiting for A and then for B therefore misses a B printed
// before A on the same stream. stdout and stderr are consumed separately:
// they come through separate pipes, so their relative order is not known.
//
// Go code inside a namespace. Netns.Do runs a function on an OS thread that
// has entered the namespace; sockets made there stay in the namespace and
// may be used from any goroutine afterwards. Netns.Listen, ListenPacket,
// Dial and HTTPClient build on it, so an in-process server (net/http, a DHCP
// server on a UDP socket) can serve a VM's bridge.
//
// BMCs. StartIPMISim runs OpenIPMI's ipmi_sim; StartRedfishBMC is a
// Redfish service of the lab's own (sessions, Basic authentication, TLS
// with its own certificate) over one computer system and one manager. Given
// a QEMU command line (RedfishBMCConfig.VM) it owns that VM as a BMC owns
// its host: power on starts QEMU with a QMP socket of its own (QMP), the
// boot override is QEMU's boot order (bootindex, set through qom-set on a
// running VM), and the manager's virtual CD drive is QEMU's CD-ROM
// (blockdev-change-medium). TestRedfishConformance checks it with
// redfishtool and sushy, clients the project did not write.
//
// Package sim, below, simulates an appliance's peers in numbers (machines
// that network boot, the installer's agent, a DHCP relay, sites syncing
// with central) over a Net of two namespaces, for benchmarks and tests.
package lab
