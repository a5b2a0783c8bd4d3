package vmedia

import (
	"bytes"
	"fmt"
)

// udhcpcPath is the installer's udhcpc script, which the overlay replaces.
const udhcpcPath = "usr/share/udhcpc/default.script"

// udhcpcScript replaces the installer's udhcpc script (see the package
// comment). udhcpc runs it at start ("deconfig") and whenever it gets no
// lease ("leasefail"): it then gives the interface the static
// configuration of the command line, writes the lease file the
// installer waits for (/run/outpost/lease, in the installer's format)
// and says so on the console once. What a DHCP server might answer is
// ignored.
const udhcpcScript = `#!/bin/sh
# Outpost virtual media: the static network of the kernel command line.
for a in $(cat /proc/cmdline); do
	case $a in
	outpost.ip=*) addr=${a#*=} ;;
	outpost.gateway=*) router=${a#*=} ;;
	outpost.dns=*) dns=$(echo "${a#*=}" | tr , ' ') ;;
	outpost.domain=*) domain=${a#*=} ;;
	esac
done
if [ -z "$addr" ]; then
	echo "outpost-installer: virtual media without outpost.ip on the command line" >/dev/console
	exit 1
fi
case $1 in
bound | renew) exit 0 ;;
esac
state=/run/outpost
mkdir -p "$state"
if ! ip -4 addr show dev "$interface" | grep -q "inet $addr "; then
	ip -4 addr flush dev "$interface"
	ip addr add "$addr" dev "$interface"
fi
ip link set "$interface" up
if [ -n "$router" ]; then
	ip route replace default via "$router" dev "$interface"
fi
{
	if [ -n "$domain" ]; then
		echo "search $domain"
	fi
	for ns in $dns; do
		echo "nameserver $ns"
	done
} >/etc/resolv.conf
if [ ! -e "$state/lease" ]; then
	{
		echo "interface='$interface'"
		echo "ip='${addr%/*}'"
		echo "mask='${addr#*/}'"
		echo "router='$router'"
		echo "dns='$dns'"
		echo "domain='$domain'"
		echo "serverid=''"
	} >"$state/lease.tmp"
	mv -f "$state/lease.tmp" "$state/lease"
	echo "outpost-installer: static address $addr on $interface (virtual media)" >/dev/console
fi
exit 0
`

// overlay is the initramfs archive (cpio, newc) added over the
// installer's: the one file udhcpcPath.
func overlay() []byte {
	var b bytes.Buffer
	cpioEntry(&b, 1, udhcpcPath, 0o100755, []byte(udhcpcScript))
	cpioEntry(&b, 2, "TRAILER!!!", 0, nil)
	return b.Bytes()
}

// cpioEntry writes one newc entry, owned by root, mtime 0.
func cpioEntry(b *bytes.Buffer, ino int, name string, mode int, data []byte) {
	fmt.Fprintf(b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	b.WriteString(name)
	b.WriteByte(0)
	pad(b)
	b.Write(data)
	pad(b)
}

// pad aligns b to 4 bytes with zeros.
func pad(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}
