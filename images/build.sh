#!/usr/bin/env bash
# Builds Outpost's boot artifacts into images/out/ from installed Debian
# packages; nothing is downloaded. `make images` runs it.
#
#   undionly.kpxe ipxe.efi snponly.efi   iPXE, copied from the ipxe package
#   vmlinuz                              the newest /boot/vmlinuz-* (linux-image-amd64)
#   test-initrd.img                      gzip'ed newc cpio: busybox-static and
#                                        images/test-initrd/init, which prints
#                                        OUTPOST-BOOT-OK and powers off
#
# Each artifact gets a <name>.sha256 sidecar holding only its hex digest
# (no newline). The script is idempotent and quick when everything is up to
# date: it rewrites nothing that has not changed, and it builds the initrd
# reproducibly (sorted entries, mtime 0, owner 0:0), so a rebuild from the
# same inputs yields the same bytes. Concurrent runs (tests of several
# packages) serialize on a lock file in the output directory.
#
# Environment: OUT overrides the output directory.
#
# Exit status: 0 built or up to date; 3 an input is missing (the message
# names the Debian package to install); 1 anything else.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${OUT:-$here/out}

die() {
	echo "images: $*" >&2
	exit 1
}

# need PATH PACKAGE: fail with exit status 3 when an input is missing.
need() {
	if [[ ! -r $1 ]]; then
		echo "images: missing $1: apt-get install $2" >&2
		exit 3
	fi
}

needcmd() {
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "images: missing command $1: apt-get install $2" >&2
		exit 3
	fi
}

# sidecar FILE: write FILE.sha256 when it is missing or older than FILE.
sidecar() {
	local f=$1
	if [[ ! -s $f.sha256 || $f -nt $f.sha256 ]]; then
		local sum
		sum=$(sha256sum "$f" | cut -d' ' -f1)
		printf '%s' "$sum" >"$f.sha256.tmp"
		mv -f "$f.sha256.tmp" "$f.sha256"
	fi
}

# install_copy SRC NAME: copy SRC to $out/NAME unless it is already there.
install_copy() {
	local src=$1 dst=$out/$2
	if ! cmp -s "$src" "$dst"; then
		cp "$src" "$dst.tmp"
		chmod 0644 "$dst.tmp"
		mv -f "$dst.tmp" "$dst"
		echo "images: $2 <- $src"
	fi
	sidecar "$dst"
}

# newest_kernel: the /boot/vmlinuz-* with the highest version.
newest_kernel() {
	local k
	k=$(find /boot -maxdepth 1 -name 'vmlinuz-*' -print 2>/dev/null | sort -V | tail -n 1)
	if [[ -z $k ]]; then
		echo "images: missing /boot/vmlinuz-*: apt-get install linux-image-amd64" >&2
		exit 3
	fi
	echo "$k"
}

# build_initrd DST: pack busybox and the init script into DST.
build_initrd() {
	local dst=$1 busybox=$2 init=$3
	stage=$(mktemp -d "$out/.initrd.XXXXXX")

	mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys"
	cp "$busybox" "$stage/bin/busybox"
	cp "$init" "$stage/init"
	chmod 0755 "$stage" "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys" \
		"$stage/bin/busybox" "$stage/init"
	find "$stage" -exec touch -h -d @0 {} +

	(cd "$stage" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet) |
		gzip -9 -n >"$dst.tmp"
	mv -f "$dst.tmp" "$dst"
	rm -rf "$stage"
	echo "images: test-initrd.img built"
}

# stage is the initrd's staging directory while one is being built.
stage=
trap 'if [[ -n $stage ]]; then rm -rf "$stage"; fi' EXIT

main() {
	local ipxe=/usr/lib/ipxe busybox=/bin/busybox init=$here/test-initrd/init
	local f kernel

	for f in undionly.kpxe ipxe.efi snponly.efi; do
		need "$ipxe/$f" ipxe
	done
	need "$busybox" busybox-static
	if ! file_is_static "$busybox"; then
		echo "images: $busybox is not statically linked: apt-get install busybox-static" >&2
		exit 3
	fi
	needcmd cpio cpio
	needcmd gzip gzip
	needcmd flock util-linux
	[[ -r $init ]] || die "missing $init (a file of this repository)"
	kernel=$(newest_kernel)
	need "$kernel" linux-image-amd64

	mkdir -p "$out"
	exec 9>"$out/.lock"
	flock 9

	for f in undionly.kpxe ipxe.efi snponly.efi; do
		install_copy "$ipxe/$f" "$f"
	done
	install_copy "$kernel" vmlinuz

	local initrd=$out/test-initrd.img
	if [[ ! -s $initrd || $busybox -nt $initrd || $init -nt $initrd || ${BASH_SOURCE[0]} -nt $initrd ]]; then
		build_initrd "$initrd" "$busybox" "$init"
	fi
	sidecar "$initrd"
}

# file_is_static FILE: whether the ELF FILE has no program interpreter.
file_is_static() {
	# A dynamic executable's PT_INTERP names its loader by full path.
	! grep -qaE '/lib(64)?/ld-linux' "$1"
}

main "$@"
