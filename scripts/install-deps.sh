#!/usr/bin/env bash
# Installs, where missing, what Outpost needs on a Debian machine.
#
#   scripts/install-deps.sh run    what `make run` needs
#   scripts/install-deps.sh test   what `make test` needs (a superset)
#
# Only packages that are not installed yet are installed, so the script is
# quick to re-run. It needs root to install; without root it says what is
# missing and fails.
set -euo pipefail

what="${1:-test}"

# Debian packages per purpose. images/build.sh makes the boot artifacts
# (iPXE, the installer's kernel and initramfs, the test OS disk image) from
# image_pkgs. `make run` also runs a demo: QEMU VMs behind a BMC simulator
# (ipmi_sim) in a network namespace.
# The lab (appliance/internal/lab) is the real peers the network-boot tests
# run against: besides those, OVMF, DHCP and TFTP servers and clients, a
# BMC simulator, DMTF's Redfish client (redfishtool) and OpenStack's
# (python3-sushy), which check the lab's Redfish BMC
# (scripts/redfish-conformance-sushy.py), xorriso and isolinux, which
# make the virtual-media boot ISOs (appliance/internal/vmedia), and nftables, which drops packets at random inside a
# test's network namespace (the kernel has no netem) for the loss tests.
# qemu-system-arm (qemu-system-aarch64) and qemu-efi-aarch64 (AAVMF, EDK2
# for arm64) run the arm64 VMs. cloud-init is the stock client of the metadata service: the tests drive
# its Ec2 datasource in a namespace (appliance/e2e/cloudinit_*). It must
# never run on the machine it is installed on, so /etc/cloud/cloud-init.disabled
# is made before it is installed (cloud-init's own switch: its generator
# then enables none of its units). arping (iputils) shows which hosts
# answer ARP for the metadata address.
image_pkgs=(ipxe shim-signed grub-efi-amd64-signed busybox-static cpio linux-image-amd64 kmod gzip zstd xz-utils
	syslinux syslinux-common mtools dosfstools fdisk util-linux kexec-tools)
run_pkgs=(ca-certificates iproute2 qemu-system-x86 ipxe-qemu openipmi ipmitool "${image_pkgs[@]}")
# The arm64 artifacts (images/build-arm64.sh) come from Debian's arm64
# packages, served through multiarch (dpkg --add-architecture arm64). They
# are not installed (an arm64 kernel and GRUB beside this machine's own):
# their .debs are downloaded into arm64_dir, which build.sh unpacks.
# linux-image-arm64 is the metapackage: its dependency is the kernel.
arm64_pkgs=(linux-image-arm64 busybox-static grub-efi-arm64-signed)
arm64_dir=${ARM64_DEBS:-/var/cache/outpost/arm64}
lab_pkgs=(ovmf tftp-hpa atftp isc-dhcp-client isc-dhcp-relay udhcpc kea-dhcp4-server kea-admin
	dnsmasq tftpd-hpa qemu-system-arm qemu-efi-aarch64 redfishtool python3-sushy xorriso isolinux nftables cloud-init iputils-arping)
# The benchmarks (`make bench`) compare Outpost's servers with the usual
# ones, started by hand with configurations of their own: beside the
# lab's DHCP and TFTP servers, nginx serving the same artifact
# (artifacts.serve); valgrind counts the instructions a DHCP exchange
# costs each server (dhcp.cost, under callgrind).
bench_pkgs=(nginx valgrind)
# The console's browser tests (appliance/internal/browsertest) drive
# headless chromium and give it the site CA through an NSS database
# (certutil).
browser_pkgs=(chromium libnss3-tools)
test_pkgs=("${run_pkgs[@]}" gcc libc6-dev "${lab_pkgs[@]}" "${bench_pkgs[@]}" "${browser_pkgs[@]}")

case "$what" in
run) pkgs=("${run_pkgs[@]}") ;;
test) pkgs=("${test_pkgs[@]}") ;;
*) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

# Another apt or dpkg may hold the locks, such as unattended-upgrades on a
# fresh machine: wait up to 10 minutes for them rather than fail at once.
# apt-get waits for the dpkg lock itself (DPkg::Lock::Timeout), but apt 2.6
# does not wait for the package lists' lock, which `apt-get update` takes,
# so apt_update tries again while that lock is what stops it.
apt_lock=(-o DPkg::Lock::Timeout=600)
apt_update() {
	local deadline=$((SECONDS + 600)) out
	while :; do
		if out=$(LC_ALL=C apt-get "${apt_lock[@]}" update -qq 2>&1); then
			[[ -z $out ]] || printf '%s\n' "$out"
			return 0
		fi
		if [[ $out != *"Could not get lock"* ]] || ((SECONDS >= deadline)); then
			printf '%s\n' "$out" >&2
			return 1
		fi
		echo "install-deps: waiting for another apt to release its lock"
		sleep 5
	done
}

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	if [[ " ${missing[*]} " == *" cloud-init "* ]]; then
		mkdir -p /etc/cloud
		touch /etc/cloud/cloud-init.disabled
	fi
	export DEBIAN_FRONTEND=noninteractive
	# kexec-tools is packed into the installer, not used by this machine:
	# its reboots stay the firmware's (the package asks, "true" by default).
	if [[ " ${missing[*]} " == *" kexec-tools "* ]]; then
		echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections
	fi
	apt_update
	apt-get "${apt_lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The benchmark runs nginx by hand; the packaged service that
	# installing it started (under systemd) would only hold port 80.
	if [[ " ${missing[*]} " == *" nginx "* && -d /run/systemd/system ]]; then
		systemctl disable --now nginx >/dev/null 2>&1 || true
	fi
	# Likewise the tests run dhcrelay in their own namespaces: the
	# packaged relay service would relay the host's own network.
	if [[ " ${missing[*]} " == *" isc-dhcp-relay "* && -d /run/systemd/system ]]; then
		systemctl disable --now isc-dhcp-relay >/dev/null 2>&1 || true
	fi
fi

# arm64_download: the arm64 packages' .debs into arm64_dir, where one of
# each is missing (the kernel's by the metapackage's dependency).
arm64_download() {
	local p deb missing=()
	for p in "${arm64_pkgs[@]}"; do
		if [[ $p == linux-image-arm64 ]]; then
			p=$(apt-cache depends "linux-image-arm64:arm64" | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -n 1)
			[[ -n $p ]] || { echo "install-deps: linux-image-arm64:arm64 names no kernel" >&2; return 1; }
		fi
		deb=$(find "$arm64_dir" -maxdepth 1 -name "${p}_*_arm64.deb" -print -quit 2>/dev/null)
		[[ -n $deb ]] || missing+=("$p:arm64")
	done
	((${#missing[@]})) || return 0
	echo "install-deps: downloading ${missing[*]} into $arm64_dir"
	mkdir -p "$arm64_dir"
	# _apt cannot write into a root-owned directory: download as root.
	(cd "$arm64_dir" && apt-get -o APT::Sandbox::User=root download "${missing[@]}" >/dev/null)
}

if [[ $what == test ]]; then
	if ! dpkg --print-foreign-architectures | grep -qx arm64 || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
		if [[ $(id -u) -ne 0 ]]; then
			echo "install-deps: Debian's arm64 packages are not known (run as root: dpkg --add-architecture arm64; apt-get update)" >&2
			exit 1
		fi
		dpkg --add-architecture arm64
		apt_update
	fi
	arm64_download
fi

# Go: the module needs the toolchain named in go.mod; a newer go fetches it
# through the module proxy by itself (GOTOOLCHAIN=auto).
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "install-deps: Go is not installed: install Go 1.22 or newer (https://go.dev/doc/install); it fetches the toolchain go.mod names" >&2
	exit 1
fi
go mod download
