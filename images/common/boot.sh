# Shell functions shared by the /init of Outpost's initramfs images (the
# installer's and the test OS's), installed as /lib/outpost/boot.sh. An
# /init sets PREFIX (the tag of its progress lines) and sources this file
# with busybox's sh.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# CONSOLES are the console devices (tty0 ttyS0): every progress line goes
# to each of them. /dev/console is only the last one.
CONSOLES=

# boot_setup mounts the pseudo file systems, points stdin, stdout and
# stderr at /dev/console and finds the console devices.
boot_setup() {
	mkdir -p /proc /sys /dev /run /tmp
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	# The kernel found no /dev/console to open before devtmpfs was up.
	exec </dev/console >/dev/console 2>&1
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
	mkdir -p /dev/pts /dev/shm /run/outpost
	mount -t devpts devpts /dev/pts
	ln -sf /proc/self/fd /dev/fd
	ln -sf /proc/mounts /etc/mtab
	CONSOLES=$(cat /sys/class/tty/console/active 2>/dev/null)
	if [ -z "$CONSOLES" ]; then
		CONSOLES=console
	fi
}

# emit LINE prints LINE once on each console device.
emit() {
	local dev
	for dev in $CONSOLES; do
		echo "$1" >"/dev/$dev" 2>/dev/null
	done
}

# say MESSAGE prints a progress line, "$PREFIX: MESSAGE".
say() {
	emit "$PREFIX: $*"
}

# announce LINE prints LINE on each console device and on ttyS0 if it is
# not one: a test reads it from the serial port.
announce() {
	emit "$1"
	case " $CONSOLES " in
	*" ttyS0 "*) ;;
	*) if [ -c /dev/ttyS0 ]; then echo "$1" >/dev/ttyS0 2>/dev/null; fi ;;
	esac
}

# param NAME prints the value of the kernel parameter NAME=value.
param() {
	local arg
	for arg in $(cat /proc/cmdline); do
		case $arg in
		"$1"=*) echo "${arg#*=}" ;;
		esac
	done
}

# loaded lists the loaded modules in the order they were loaded.
loaded() {
	cut -d' ' -f1 /proc/modules | tac
}

# load_modules loads the drivers of the hardware this machine has, by the
# modalias of every device in /sys (again while that loads new ones: a
# PCI driver adds virtio devices), then, unless its argument is
# "drivers", every module of /etc/outpost/modules.load (those that drive
# no hardware: file systems, code pages). It prints a line per module
# loaded. Each round is one modprobe for every alias: a process per
# alias costs seconds under emulation.
load_modules() {
	local before after round=0 m aliases
	while [ $round -lt 5 ]; do
		before=$(loaded)
		aliases=$(cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u)
		if [ -n "$aliases" ]; then
			set -f # an alias is not a pattern
			modprobe -q -a $aliases 2>/dev/null
			set +f
		fi
		after=$(loaded)
		if [ "$before" = "$after" ]; then
			break
		fi
		round=$((round + 1))
	done
	m=
	if [ "$1" != drivers ]; then
		m=$(cat /etc/outpost/modules.load 2>/dev/null)
	fi
	if [ -n "$m" ] && ! modprobe -a $m; then
		for m in $m; do
			modprobe "$m" || say "cannot load module $m"
		done
	fi
	for m in $(loaded); do
		say "loaded $m"
	done
}

# iface_with_mac MAC prints the interface whose address is MAC.
iface_with_mac() {
	local n
	for n in /sys/class/net/*; do
		if [ "$(cat "$n/address" 2>/dev/null)" = "$1" ]; then
			echo "${n##*/}"
			return 0
		fi
	done
	return 1
}

# iface_with_carrier brings every network device up and prints the first
# one with a carrier.
iface_with_carrier() {
	local n
	for n in /sys/class/net/*; do
		if [ -e "$n/device" ]; then
			ip link set "${n##*/}" up 2>/dev/null
		fi
	done
	for n in /sys/class/net/*; do
		if [ -e "$n/device" ] && [ "$(cat "$n/carrier" 2>/dev/null)" = 1 ]; then
			echo "${n##*/}"
			return 0
		fi
	done
	return 1
}

# pick_iface prints the interface to configure: the one whose MAC is the
# outpost.mac parameter (waited for ~10 s), else the first with a carrier
# (waited for as long as it takes).
pick_iface() {
	local mac i=0
	mac=$(param outpost.mac | tr 'A-F' 'a-f')
	if [ -n "$mac" ]; then
		while [ $i -lt 20 ]; do
			if iface_with_mac "$mac"; then
				return 0
			fi
			sleep 0.5
			i=$((i + 1))
		done
		say "no interface has outpost.mac $mac; using the first with a carrier"
	fi
	i=0
	until iface_with_carrier; do
		if [ $((i % 20)) -eq 0 ]; then
			say "waiting for a network interface with a carrier"
		fi
		sleep 0.5
		i=$((i + 1))
	done
}

# net_up configures an interface with udhcpc, which keeps renewing the
# lease in the background, and waits for the lease for as long as it
# takes. It sets ip, mask, router, serverid and interface from the lease.
net_up() {
	local i=0 pid
	interface=$(pick_iface)
	say "interface $interface ($(cat "/sys/class/net/$interface/address"))"
	ip link set "$interface" up
	rm -f /run/outpost/lease
	while [ ! -e /run/outpost/lease ]; do
		if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
			# udhcpc retries forever: 5 discovers 2 s apart, a 3 s pause.
			udhcpc -f -i "$interface" -s /usr/share/udhcpc/default.script -t 5 -T 2 -A 3 &
			pid=$!
		fi
		i=$((i + 1))
		if [ $((i % 75)) -eq 0 ]; then
			say "waiting for a DHCP lease on $interface"
		fi
		sleep 0.2
	done
	. /run/outpost/lease
	say "network up on $interface $ip/$mask"
}
