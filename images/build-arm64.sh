# shellcheck shell=bash
# The arm64 artifacts, sourced by images/build.sh (whose functions and
# conventions they use: sidecars, input digests in OUT/.work, reproducible
# cpio and FAT). Their inputs are Debian's arm64 packages, which this
# amd64 machine cannot install side by side with its own kernel and GRUB:
# scripts/install-deps.sh downloads their .debs (apt-get download) into
# ARM64_DEBS, default /var/cache/outpost/arm64, and this script unpacks
# them (dpkg-deb -x) into OUT/.work/arm64-root; nothing here downloads.
#
#   grubaa64.efi             Debian's signed GRUB network image for arm64
#                            (grub-efi-arm64-signed: grubnetaa64.efi.signed),
#                            which EDK2's own PXE client boots over TFTP
#                            (the DHCP server names it for client
#                            architecture 11); no shim: the lab's arm64
#                            firmware does not enforce Secure Boot
#                            It reads grub/grub.cfg (build.sh's grub_cfg),
#                            which sends an arm64 GRUB ($grub_cpu) to
#                            grub/arm64-efi/<MAC>.cfg: the appliance knows
#                            from the name that the machine is arm64
#   vmlinuz-arm64            linux-image-*-arm64's kernel (an EFI stub)
#   installer-arm64.initrd   the installer for it: installer/init, busybox
#                            (busybox-static:arm64), the arm64 modules of
#                            installer/modules.list, the agent built with
#                            GOARCH=arm64; no kexec-tools (arm64 machines
#                            reboot into the installed OS)
#   testos-arm64.raw.gz .zst .xz  the test OS on a 64 MiB GPT disk whose EFI
#                            system partition boots Debian's arm64 GRUB
#                            (grubaa64.efi.signed) as EFI/BOOT/BOOTAA64.EFI,
#                            which reads EFI/debian/grub.cfg

# arm64_debs: the directory of the arm64 .debs.
arm64_debs=${ARM64_DEBS:-/var/cache/outpost/arm64}

# arm64_deb PACKAGE: the newest .deb of PACKAGE (a glob) in arm64_debs; exit
# status 3 naming it when there is none.
arm64_deb() {
	local f
	f=$(find "$arm64_debs" -maxdepth 1 -name "$1_*_arm64.deb" -print 2>/dev/null | sort -V | tail -n 1)
	if [[ -z $f ]]; then
		echo "images: missing $arm64_debs/$1_*_arm64.deb: scripts/install-deps.sh test (apt-get download $1:arm64 there)" >&2
		exit 3
	fi
	echo "$f"
}

# check_arm64_inputs: the arm64 packages' .debs, and dpkg-deb.
check_arm64_inputs() {
	needcmd dpkg-deb dpkg
	a64_kernel_deb=$(arm64_deb 'linux-image-[0-9]*-arm64')
	a64_busybox_deb=$(arm64_deb busybox-static)
	a64_grub_deb=$(arm64_deb grub-efi-arm64-signed)
	a64_kver=${a64_kernel_deb##*/linux-image-}
	a64_kver=${a64_kver%%_*}
}

# unpack_arm64: the .debs unpacked into $work/arm64-root (with depmod's
# indexes, which the kernel package's postinst would make), when they
# changed.
unpack_arm64() {
	local sum d
	a64root=$work/arm64-root
	sum=$(digest "$script" "$here/build-arm64.sh" "$a64_kernel_deb" "$a64_busybox_deb" "$a64_grub_deb")
	if [[ -d $a64root && -r $work/arm64-root.inputs && $(<"$work/arm64-root.inputs") == "$sum" ]]; then
		return
	fi
	rm -rf "$a64root"
	mkdir -p "$a64root"
	for d in "$a64_kernel_deb" "$a64_busybox_deb" "$a64_grub_deb"; do
		dpkg-deb -x "$d" "$a64root"
	done
	depmod -b "$a64root" "$a64_kver"
	record arm64-root "$sum"
}

# use_arm64: points build.sh's initramfs functions (resolve_modules,
# stage_initramfs, initramfs_inputs) at the arm64 kernel and busybox.
use_arm64() {
	kver=$a64_kver
	modroot=$a64root
	kmods=$a64root/lib/modules/$kver
	kernel=$a64root/boot/vmlinuz-$kver
	applets_from=$busybox
	busybox=$a64root/bin/busybox
	need "$kernel" "linux-image-$kver:arm64"
	need "$busybox" busybox-static:arm64
}

# build_installer_arm64: installer-arm64.initrd, when its inputs changed.
build_installer_arm64() {
	local init=$here/installer/init sum stage inputs agent=$work/outpost-agent-arm64
	mapfile -t inputs < <(initramfs_inputs)
	sum=$(digest "${inputs[@]}" "$here/build-arm64.sh" "$init" "$agent")
	if up_to_date installer-arm64.initrd "$sum"; then
		return
	fi
	new_stage stage
	stage_initramfs "$stage" "$init"
	install -m 0755 "$agent" "$stage/bin/outpost-agent"
	pack "$stage" "$out/installer-arm64.initrd.tmp"
	rm -rf "$stage"
	publish "$out/installer-arm64.initrd.tmp" installer-arm64.initrd
	record installer-arm64.initrd "$sum"
	echo "images: installer-arm64.initrd built ($(du -h "$out/installer-arm64.initrd" | cut -f1))"
}

# build_testos_arm64: testos-arm64.raw.gz, .zst and .xz, when their inputs
# changed.
build_testos_arm64() {
	local sum raw=$work/testos-arm64.raw tools
	build_testos_initrd testos-arm64-initrd
	tool_files tools mkfs.vfat mmd mcopy sfdisk gzip zstd xz
	sum=$(digest "$script" "$here/build-arm64.sh" "$kernel" "$work/testos-arm64-initrd.img" "$a64grubdisk" "${tools[@]}")
	if up_to_date testos-arm64.raw.gz "$sum" testos-arm64.raw.zst testos-arm64.raw.xz; then
		return
	fi
	# GRUB is the removable-media boot file; its prefix is /EFI/debian.
	# The serial console of QEMU's virt machine is its PL011 UART.
	serial_console=ttyAMA0,115200 build_efi_disk "$raw" "$work/testos-arm64-initrd.img" grub_disk_cfg \
		"$a64grubdisk" EFI/BOOT/BOOTAA64.EFI
	compress_testos "$raw" testos-arm64 "$sum"
}

# build_arm64: every arm64 artifact. It runs last: it points the
# initramfs functions at the arm64 kernel.
build_arm64() {
	unpack_arm64
	a64grubdisk=$a64root/usr/lib/grub/arm64-efi-signed/grubaa64.efi.signed
	need "$a64root/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed" grub-efi-arm64-signed:arm64
	need "$a64grubdisk" grub-efi-arm64-signed:arm64
	install_copy "$a64root/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed" grubaa64.efi
	use_arm64
	install_copy "$kernel" vmlinuz-arm64
	resolve_modules
	build_agent arm64
	build_installer_arm64
	build_testos_arm64
}
