#!/usr/bin/env bash
# Builds Outpost's boot artifacts into images/out/ from installed Debian
# packages and this repository's Go code; nothing is downloaded.
# `make images` runs it.
#
#   undionly.kpxe ipxe.efi snponly.efi   iPXE, copied from the ipxe package
#   shimx64.efi grubx64.efi              Debian's signed shim and GRUB network
#                                        image (shim-signed, grub-efi-amd64-signed),
#                                        the Secure Boot path
#   grub/grub.cfg                        what that GRUB reads first over TFTP:
#                                        it sources the appliance's per-machine
#                                        grub/<MAC>.cfg
#   vmlinuz                              the newest /boot/vmlinuz-* (linux-image-amd64,
#                                        signed for Secure Boot)
#   test-initrd.img                      gzip'ed newc cpio: busybox-static and
#                                        images/test-initrd/init, which prints
#                                        OUTPOST-BOOT-OK and powers off
#   installer.initrd                     gzip'ed newc cpio: the in-memory
#                                        installer (images/installer/init,
#                                        busybox, kernel modules, the agent,
#                                        kexec-tools' kexec and its libraries)
#   testos.raw.gz .zst .xz               a 64 MiB disk image (MBR, one FAT
#                                        partition, SYSLINUX) that boots the
#                                        test OS (images/testos/init)
#   grubaa64.efi vmlinuz-arm64 installer-arm64.initrd testos-arm64.raw.*
#                                        the same for arm64 machines, from
#                                        Debian's arm64 packages: see
#                                        images/build-arm64.sh
#   testos-efi.raw.gz .zst .xz           the same test OS on a 64 MiB GPT disk
#                                        whose one partition is an EFI system
#                                        partition booting through Debian's
#                                        signed shim and GRUB and the signed
#                                        kernel: bootable under Secure Boot
#
# Each artifact gets a <name>.sha256 sidecar holding only its hex digest
# (no newline). The script is idempotent and quick when everything is up to
# date: it rewrites nothing that has not changed (the installer and the test
# OS are rebuilt when a digest of their inputs changes, recorded in
# OUT/.work), and it builds reproducibly (sorted cpio entries, mtime
# SOURCE_DATE_EPOCH or 0, owner 0:0, gzip -n; fixed FAT volume id, disk
# identifier and dates), so a rebuild from the same inputs yields the same
# bytes. Concurrent runs (tests of several packages) serialize on a lock
# file in the output directory.
#
# Environment: OUT overrides the output directory; SOURCE_DATE_EPOCH the
# files' dates.
#
# Exit status: 0 built or up to date; 3 an input is missing (the message
# names the Debian package to install); 1 anything else.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out=${OUT:-$here/out}
work=$out/.work # intermediates and the input digests of the artifacts
script=$here/build.sh

# depmod, sfdisk and mkfs.vfat live in sbin; go in /usr/local/go/bin.
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/local/go/bin
export LC_ALL=C TZ=UTC MTOOLS_SKIP_CHECK=1
umask 022

# epoch dates every packed file. FAT cannot date a file before 1980.
epoch=${SOURCE_DATE_EPOCH:-0}
fat_epoch=$((epoch > 315532800 ? epoch : 315532800))

# The test OS disk: 64 MiB, its FAT partition from 1 MiB to the end.
disk_mib=64
part_start=2048 # sectors
volume_id=4f505354
disk_id=0x4f505354
# The EFI test OS disk's GPT: its disk GUID, its one partition's GUID and
# the EFI system partition's type.
disk_guid=4f505354-0000-4000-8000-000000000001
esp_guid=4f505354-0000-4000-8000-000000000002
esp_type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B

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

# publish TMP NAME: move TMP to $out/NAME and write its sidecar.
publish() {
	chmod 0644 "$1"
	mv -f "$1" "$out/$2"
	sidecar "$out/$2"
}

# digest FILE...: one digest of the files' names and contents and of the
# dates they are packed with.
digest() {
	{
		sha256sum -- "$@"
		echo "epoch $epoch"
	} | sha256sum | cut -d' ' -f1
}

# up_to_date NAME DIGEST [FILE...]: whether NAME was built from inputs
# with DIGEST and it and FILEs (relative to $out) are still there.
up_to_date() {
	local name=$1 sum=$2 f
	shift 2
	for f in "$name" "$@"; do
		[[ -s $out/$f && -s $out/$f.sha256 ]] || return 1
	done
	[[ -r $work/$name.inputs && $(<"$work/$name.inputs") == "$sum" ]]
}

# record NAME DIGEST: NAME is now built from inputs with DIGEST.
record() {
	printf '%s\n' "$2" >"$work/$1.inputs"
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

# file_is_static FILE: whether the ELF FILE has no program interpreter.
file_is_static() {
	# A dynamic executable's PT_INTERP names its loader by full path.
	! grep -qaE '/lib(64)?/ld-linux' "$1"
}

# new_stage VAR: a fresh staging directory in VAR, removed on exit.
new_stage() {
	local d
	d=$(mktemp -d "$out/.stage.XXXXXX")
	stages+=("$d")
	chmod 0755 "$d"
	printf -v "$1" '%s' "$d"
}

# pack STAGE DST: STAGE as a gzip'ed newc cpio, reproducibly.
pack() {
	local stage=$1 dst=$2
	find "$stage" -exec touch -h -d "@$epoch" {} +
	(cd "$stage" && find . -mindepth 1 -printf '%P\n' | sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet) |
		gzip -9 -n >"$dst"
}

stages=()
cleanup() {
	if ((${#stages[@]})); then
		rm -rf "${stages[@]}"
	fi
}
trap cleanup EXIT

# build_test_initrd: test-initrd.img, busybox and test-initrd/init.
build_test_initrd() {
	local dst=$out/test-initrd.img init=$here/test-initrd/init stage
	if [[ -s $dst && ! $busybox -nt $dst && ! $init -nt $dst && ! $script -nt $dst ]]; then
		sidecar "$dst"
		return
	fi
	new_stage stage
	mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys"
	install -m 0755 "$busybox" "$stage/bin/busybox"
	install -m 0755 "$init" "$stage/init"
	pack "$stage" "$dst.tmp"
	publish "$dst.tmp" test-initrd.img
	echo "images: test-initrd.img built"
}

# build_agent [GOARCH]: the agent, a static Go binary, in
# $work/outpost-agent (for GOARCH, default the host's: in
# $work/outpost-agent-GOARCH), replaced only when its bytes change.
build_agent() {
	local dst=$work/outpost-agent${1:+-$1}
	# -s -w: no symbol table or DWARF (a third of the binary, which every
	# boot downloads and unpacks); its panics still name functions.
	if ! (cd "$root" && CGO_ENABLED=0 GOARCH=${1:-$(go env GOARCH)} go build -trimpath -ldflags='-s -w -buildid=' \
		-o "$dst.tmp" ./appliance/cmd/outpost-agent); then
		die "go build ./appliance/cmd/outpost-agent ${1:-} failed"
	fi
	if cmp -s "$dst.tmp" "$dst"; then
		rm -f "$dst.tmp"
	else
		mv -f "$dst.tmp" "$dst"
	fi
}

# listed_modules: the names in modules.list.
listed_modules() {
	sed -e 's/#.*//' -e 's/[[:space:]]//g' "$modlist" | grep -v '^$' || true
}

# resolve_modules: sets modfiles to the .ko files (absolute) of the listed
# modules and their dependencies, in load order, and modload to the listed
# modules that drive no hardware (no bus alias: file systems, code pages),
# which /init loads unconditionally.
resolve_modules() {
	local m deps aliases line f
	local -A seen=()
	modfiles=()
	modload=()
	for m in $(listed_modules); do
		if ! deps=$(modprobe -C /dev/null -d "${modroot:-/}" -S "$kver" --show-depends "$m" 2>&1); then
			die "module $m of $modlist is not in kernel $kver: $deps"
		fi
		while read -r line; do
			case $line in
			"insmod "*)
				f=${line#insmod }
				f=${f%% *}
				if [[ -z ${seen[$f]:-} ]]; then
					seen[$f]=1
					modfiles+=("$f")
				fi
				;;
			esac
		done <<<"$deps"
		if [[ $deps == "builtin "* ]]; then
			continue
		fi
		aliases=$(modinfo -b "${modroot:-/}" -k "$kver" -F alias "$m")
		if [[ $aliases != *:* ]]; then
			modload+=("$m")
		fi
	done
}

# stage_initramfs STAGE INIT: busybox with its applet links, the modules
# (and depmod's indexes over them), the udhcpc script, the shared shell
# functions and INIT as /init.
stage_initramfs() {
	local stage=$1 init=$2 f rel mods=$stage/lib/modules/$kver
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,root,var,etc/outpost} \
		"$stage/lib/outpost" "$stage/usr/share/udhcpc" "$mods"
	install -m 0755 "$busybox" "$stage/bin/busybox"
	# The applets are listed by a busybox this machine runs (the host's,
	# of the same Debian version, for a foreign architecture's).
	"${applets_from:-$busybox}" --list-full | while read -r f; do
		if [[ ! -e $stage/$f && ! -L $stage/$f ]]; then
			ln -s /bin/busybox "$stage/$f"
		fi
	done
	install -m 0755 "$init" "$stage/init"
	install -m 0644 "$here/common/boot.sh" "$stage/lib/outpost/boot.sh"
	install -m 0755 "$here/common/udhcpc.script" "$stage/usr/share/udhcpc/default.script"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
	printf 'root:x:0:\n' >"$stage/etc/group"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$stage/etc/hosts"
	printf '%s\n' "${modload[@]}" >"$stage/etc/outpost/modules.load"
	for f in "${modfiles[@]}"; do
		rel=${f#*/modules/"$kver"/}
		mkdir -p "$(dirname "$mods/$rel")"
		install -m 0644 "$f" "$mods/$rel"
	done
	for f in modules.order modules.builtin modules.builtin.modinfo; do
		if [[ -r $kmods/$f ]]; then
			install -m 0644 "$kmods/$f" "$mods/$f"
		fi
	done
	depmod -b "$stage" "$kver"
}

# initramfs_inputs: the files every initramfs is built from.
initramfs_inputs() {
	local f
	printf '%s\n' "$script" "$modlist" "$busybox" "$here/common/boot.sh" "$here/common/udhcpc.script" \
		"${modfiles[@]}"
	for f in modules.order modules.builtin modules.builtin.modinfo; do
		if [[ -r $kmods/$f ]]; then
			echo "$kmods/$f"
		fi
	done
}

# program_files PROG: PROG (a dynamically linked executable), the
# shared libraries it loads and the dynamic loader, by the paths it finds
# them at (ldd's).
program_files() {
	echo "$1"
	ldd "$1" | grep -o '/[^ ]*' | sort -u
}

# stage_program STAGE PROG: PROG, its libraries and the loader at their
# paths in STAGE.
stage_program() {
	local stage=$1 f
	for f in $(program_files "$2"); do
		mkdir -p "$stage$(dirname "$f")"
		install -m 0755 "$(readlink -f "$f")" "$stage$f"
	done
}

# build_installer: installer.initrd, when its inputs changed.
build_installer() {
	local init=$here/installer/init sum stage inputs prog
	mapfile -t inputs < <(initramfs_inputs)
	mapfile -t prog < <(program_files "$kexec")
	sum=$(digest "${inputs[@]}" "$init" "$work/outpost-agent" "${prog[@]}")
	if up_to_date installer.initrd "$sum"; then
		return
	fi
	new_stage stage
	stage_initramfs "$stage" "$init"
	install -m 0755 "$work/outpost-agent" "$stage/bin/outpost-agent"
	# The agent's kexec loads a kernel with it (kexec_load, no checks).
	stage_program "$stage" "$kexec"
	pack "$stage" "$out/installer.initrd.tmp"
	rm -rf "$stage"
	publish "$out/installer.initrd.tmp" installer.initrd
	record installer.initrd "$sum"
	echo "images: installer.initrd built ($(du -h "$out/installer.initrd" | cut -f1))"
}

# build_testos_initrd NAME: $work/NAME.img, the test OS's initramfs for
# the kernel the initramfs functions are pointed at, when its inputs
# changed.
build_testos_initrd() {
	local name=$1 init=$here/testos/init sum stage inputs dst=$work/$1.img
	mapfile -t inputs < <(initramfs_inputs)
	module_files testos_modfiles "${testos_modules[@]}"
	sum=$(digest "${inputs[@]}" "$init" "${testos_modfiles[@]}")
	if [[ -s $dst && -r $work/$name.inputs && $(<"$work/$name.inputs") == "$sum" ]]; then
		return
	fi
	new_stage stage
	stage_initramfs "$stage" "$init"
	stage_modules "$stage" "${testos_modfiles[@]}"
	pack "$stage" "$dst.tmp"
	rm -rf "$stage"
	mv -f "$dst.tmp" "$dst"
	record "$name" "$sum"
}

# module_files VAR MODULE...: sets the array VAR to the .ko files
# (absolute) of MODULEs and their dependencies, in load order.
module_files() {
	local -n files=$1
	local m line f
	shift
	files=()
	for m; do
		while read -r line; do
			case $line in
			"insmod "*)
				f=${line#insmod }
				files+=("${f%% *}")
				;;
			esac
		done < <(modprobe -C /dev/null -d "${modroot:-/}" -S "$kver" --show-depends "$m")
	done
}

# stage_modules STAGE KO...: adds the modules KO to STAGE's and indexes
# them again.
stage_modules() {
	local stage=$1 f rel mods=$1/lib/modules/$kver
	shift
	for f; do
		rel=${f#*/modules/"$kver"/}
		mkdir -p "$(dirname "$mods/$rel")"
		install -m 0644 "$f" "$mods/$rel"
	done
	depmod -b "$stage" "$kver"
}

# syslinux_cfg: the test OS's boot loader configuration.
syslinux_cfg() {
	cat <<'EOF'
DEFAULT testos
PROMPT 0
TIMEOUT 0
LABEL testos
  KERNEL /vmlinuz
  APPEND initrd=/initrd.img console=tty0 console=ttyS0,115200
EOF
}

# fat_copy FAT SRC NAME: copy SRC into the FAT image as /NAME (whose
# directory must be there), dated
# fat_epoch.
fat_copy() {
	local fat=$1 src=$2 name=$3 tmp base=${3##*/}
	new_stage tmp
	cp "$src" "$tmp/$base"
	touch -d "@$fat_epoch" "$tmp/$base"
	SOURCE_DATE_EPOCH=$fat_epoch mcopy -m -i "$fat" "$tmp/$base" "::/$name"
	rm -rf "$tmp"
}

# build_disk RAW: the test OS disk image: an MBR (syslinux's boot code, a
# fixed disk identifier) with one active FAT16 partition holding SYSLINUX,
# the kernel, the test OS's initramfs and syslinux.cfg.
build_disk() {
	local raw=$1 fat=$work/testos.fat cfg=$work/syslinux.cfg
	local sectors=$((disk_mib * 2048))
	rm -f "$fat" "$raw"
	truncate -s $(((sectors - part_start) * 512)) "$fat"
	mkfs.vfat --invariant -F 16 -i "$volume_id" -n OUTPOST-OS -h "$part_start" "$fat" >/dev/null
	SOURCE_DATE_EPOCH=$fat_epoch syslinux --install "$fat"
	syslinux_cfg >"$cfg"
	fat_copy "$fat" "$cfg" syslinux.cfg
	fat_copy "$fat" "$kernel" vmlinuz
	fat_copy "$fat" "$work/testos-initrd.img" initrd.img

	truncate -s $((sectors * 512)) "$raw"
	printf 'label: dos\nlabel-id: %s\nunit: sectors\n\nstart=%d, type=e, bootable\n' \
		"$disk_id" "$part_start" | sfdisk --quiet --no-reread --no-tell-kernel "$raw" >/dev/null
	dd if="$fat" of="$raw" bs=512 seek="$part_start" conv=notrunc,sparse status=none
	dd if="$mbr" of="$raw" bs=440 count=1 conv=notrunc status=none
	rm -f "$fat" "$cfg"
}

# tool_files VAR CMD...: sets the array VAR to the files of the commands
# CMD (resolved), inputs of the disk images they make.
tool_files() {
	local -n files=$1
	local f
	shift
	files=()
	for f; do
		files+=("$(readlink -f "$(command -v "$f")")")
	done
}

# compress_testos RAW NAME SUM: RAW as $out/NAME.raw.gz, .zst and .xz
# (RAW removed), built from inputs with digest SUM.
compress_testos() {
	local raw=$1 name=$2 sum=$3
	gzip -9 -n -c "$raw" >"$out/$name.raw.gz.tmp"
	zstd -q -19 -T1 -c "$raw" >"$out/$name.raw.zst.tmp"
	xz -6 -T1 -c "$raw" >"$out/$name.raw.xz.tmp"
	rm -f "$raw"
	publish "$out/$name.raw.gz.tmp" "$name.raw.gz"
	publish "$out/$name.raw.zst.tmp" "$name.raw.zst"
	publish "$out/$name.raw.xz.tmp" "$name.raw.xz"
	record "$name.raw.gz" "$sum"
	echo "images: $name.raw.gz .zst .xz built ($(du -h "$out/$name.raw.gz" | cut -f1) gzip'ed)"
}

# build_testos: testos.raw.gz, .zst and .xz, when their inputs changed.
build_testos() {
	local sum raw=$work/testos.raw tools
	build_testos_initrd testos-initrd
	tool_files tools mkfs.vfat syslinux mcopy sfdisk gzip zstd xz
	sum=$(digest "$script" "$kernel" "$work/testos-initrd.img" "$mbr" "${tools[@]}")
	if up_to_date testos.raw.gz "$sum" testos.raw.zst testos.raw.xz; then
		return
	fi
	build_disk "$raw"
	compress_testos "$raw" testos "$sum"
}

# grub_cfg: grub/grub.cfg, read by Debian's signed GRUB network image,
# whose prefix is /grub on the TFTP server it was fetched from.
grub_cfg() {
	cat <<'EOF'
# Outpost: Debian's signed GRUB network image reads this over TFTP under its
# prefix (/grub). The appliance makes each machine's own configuration,
# which says what it boots now (the installer, or back to the firmware).
# An arm64 GRUB asks for its own under arm64-efi/: the appliance knows
# from the name that it boots arm64 (images/build-arm64.sh).
set timeout=0
if [ "$grub_cpu" = arm64 ]; then
	source /grub/arm64-efi/${net_default_mac}.cfg
else
	source /grub/${net_default_mac}.cfg
fi
EOF
}

# build_grub_cfg: grub/grub.cfg, when its text changed.
build_grub_cfg() {
	mkdir -p "$out/grub"
	grub_cfg >"$out/grub/grub.cfg.new"
	if cmp -s "$out/grub/grub.cfg.new" "$out/grub/grub.cfg"; then
		rm -f "$out/grub/grub.cfg.new"
	else
		chmod 0644 "$out/grub/grub.cfg.new"
		mv -f "$out/grub/grub.cfg.new" "$out/grub/grub.cfg"
	fi
	sidecar "$out/grub/grub.cfg"
}

# grub_disk_cfg: the EFI test OS's GRUB configuration, at
# /EFI/debian/grub.cfg (the prefix of Debian's signed grubx64.efi, on the
# partition it was loaded from): the same boot as syslinux_cfg's.
# serial_console is the serial console, ttyS0,115200 unless set.
grub_disk_cfg() {
	cat <<EOF
set timeout=0
linux /vmlinuz console=tty0 console=${serial_console:-ttyS0,115200}
initrd /initrd.img
boot
EOF
}

# fat_mkdir FAT DIR...: make directories in the FAT image, dated fat_epoch.
fat_mkdir() {
	local fat=$1
	shift
	SOURCE_DATE_EPOCH=$fat_epoch mmd -i "$fat" "$@"
}

# gpt_table LAST: sfdisk's script of the test OS disks' GPT, whose one
# partition (the EFI system partition) ends before sector LAST.
gpt_table() {
	local last=$1
	printf 'label: gpt\nlabel-id: %s\nunit: sectors\nfirst-lba: %d\nlast-lba: %d\n\nstart=%d, size=%d, type=%s, uuid=%s, name="EFI system"\n' \
		"$disk_guid" "$part_start" "$((last - 1))" "$part_start" "$((last - part_start))" "$esp_type" "$esp_guid"
}

# build_efi_disk RAW INITRD CFG SRC DST...: an EFI test OS disk image:
# GPT (fixed disk and partition GUIDs) with one EFI system partition
# (FAT16) holding the boot loader's files SRC at DST (for x86-64 shim as
# the removable-media boot file EFI/BOOT/BOOTX64.EFI, signed GRUB beside
# it, EFI/BOOT/grubx64.efi, which shim loads), GRUB's configuration (what
# the function CFG prints) at EFI/debian/grub.cfg (the prefix of Debian's
# signed GRUB images), the kernel and the initramfs INITRD.
build_efi_disk() {
	local raw=$1 initrd=$2 cfgfunc=$3 fat=$work/testos-efi.fat cfg=$work/grub-disk.cfg
	local sectors=$((disk_mib * 2048)) last
	shift 3
	last=$((sectors - 34)) # the backup GPT's 33 sectors follow
	rm -f "$fat" "$raw"
	truncate -s $(((last - part_start) * 512)) "$fat"
	mkfs.vfat --invariant -F 16 -i "$volume_id" -n OUTPOST-EFI -h "$part_start" "$fat" >/dev/null
	fat_mkdir "$fat" ::/EFI ::/EFI/BOOT ::/EFI/debian
	"$cfgfunc" >"$cfg"
	while (($#)); do
		fat_copy "$fat" "$1" "$2"
		shift 2
	done
	fat_copy "$fat" "$cfg" EFI/debian/grub.cfg
	fat_copy "$fat" "$kernel" vmlinuz
	fat_copy "$fat" "$initrd" initrd.img

	truncate -s $((sectors * 512)) "$raw"
	gpt_table "$last" | sfdisk --quiet --no-reread --no-tell-kernel "$raw" >/dev/null
	dd if="$fat" of="$raw" bs=512 seek="$part_start" conv=notrunc,sparse status=none
	rm -f "$fat" "$cfg"
}

# build_testos_efi: testos-efi.raw.gz, .zst and .xz, when their inputs
# changed.
build_testos_efi() {
	local sum raw=$work/testos-efi.raw tools
	tool_files tools mkfs.vfat mmd mcopy sfdisk gzip zstd xz
	sum=$(digest "$script" "$kernel" "$work/testos-initrd.img" "$shim" "$grubdisk" "${tools[@]}")
	if up_to_date testos-efi.raw.gz "$sum" testos-efi.raw.zst testos-efi.raw.xz; then
		return
	fi
	build_efi_disk "$raw" "$work/testos-initrd.img" grub_disk_cfg "$shim" EFI/BOOT/BOOTX64.EFI "$grubdisk" EFI/BOOT/grubx64.efi
	compress_testos "$raw" testos-efi "$sum"
}

# check_inputs fails with exit status 3, naming the Debian package, when
# something the build needs is missing.
check_inputs() {
	local f
	for f in undionly.kpxe ipxe.efi snponly.efi; do
		need "$ipxe/$f" ipxe
	done
	need "$shim" shim-signed
	need "$grubnet" grub-efi-amd64-signed
	need "$grubdisk" grub-efi-amd64-signed
	needcmd mmd mtools
	need "$busybox" busybox-static
	need "$kexec" kexec-tools
	needcmd ldd libc-bin
	if ! file_is_static "$busybox"; then
		echo "images: $busybox is not statically linked: apt-get install busybox-static" >&2
		exit 3
	fi
	needcmd cpio cpio
	needcmd gzip gzip
	needcmd zstd zstd
	needcmd xz xz-utils
	needcmd flock util-linux
	needcmd modprobe kmod
	needcmd modinfo kmod
	needcmd depmod kmod
	needcmd sfdisk fdisk
	needcmd mkfs.vfat dosfstools
	needcmd mcopy mtools
	needcmd syslinux syslinux
	need "$mbr" syslinux-common
	if ! command -v go >/dev/null 2>&1; then
		echo "images: missing command go: install Go (https://go.dev/doc/install)" >&2
		exit 3
	fi
	for f in test-initrd/init installer/init installer/modules.list testos/init \
		common/boot.sh common/udhcpc.script; do
		[[ -r $here/$f ]] || die "missing $here/$f (a file of this repository)"
	done
	kernel=$(newest_kernel)
	need "$kernel" linux-image-amd64
	kver=${kernel##*/vmlinuz-}
	kmods=/lib/modules/$kver
	need "$kmods/modules.dep" "linux-image-$kver"
}

main() {
	ipxe=/usr/lib/ipxe
	shim=/usr/lib/shim/shimx64.efi.signed
	grubnet=/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
	grubdisk=/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
	# The test OS reads the Secure Boot state from efivarfs.
	testos_modules=(efivarfs)
	busybox=/bin/busybox
	kexec=/sbin/kexec
	mbr=/usr/lib/syslinux/mbr/mbr.bin
	modlist=$here/installer/modules.list
	local f
	check_inputs
	check_arm64_inputs

	mkdir -p "$out" "$work"
	exec 9>"$out/.lock"
	flock 9

	for f in undionly.kpxe ipxe.efi snponly.efi; do
		install_copy "$ipxe/$f" "$f"
	done
	# shim fetches grubx64.efi from beside itself.
	install_copy "$shim" shimx64.efi
	install_copy "$grubnet" grubx64.efi
	build_grub_cfg
	install_copy "$kernel" vmlinuz
	build_test_initrd
	resolve_modules
	build_agent
	build_installer
	build_testos
	build_testos_efi
	build_arm64
}

# shellcheck source=images/build-arm64.sh
. "$here/build-arm64.sh"

main "$@"
