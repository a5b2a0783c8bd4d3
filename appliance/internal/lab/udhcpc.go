package lab

import "strings"

// relayedUDHCPCScript is busybox udhcpc's script for a client behind a
// relay; LOG stands for the log's path.
const relayedUDHCPCScript = `#!/bin/sh
PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH
echo "$1 $ip $subnet $router $lease $serverid" >>LOG
case $1 in
bound|renew) ip addr replace "$ip/$mask" dev "$interface" && exec ip route replace default via "$router" ;;
deconfig) exec ip addr flush dev "$interface" ;;
esac
exit 0
`

// RelayedUDHCPCScript is a udhcpc script (-s) for a client behind a
// relay. It configures the address it is given and a default route
// through the relay (the router option), so that the client renews and
// releases by unicast straight to the server, as a host on a routed
// network does; no resolv.conf, which a namespace shares with the host.
// Each call appends a line to log: the event ("bound", "renew",
// "deconfig"...), then the address, mask, router, lease time and server
// identifier as the client understood them.
func RelayedUDHCPCScript(log string) string {
	return strings.ReplaceAll(relayedUDHCPCScript, "LOG", log)
}
