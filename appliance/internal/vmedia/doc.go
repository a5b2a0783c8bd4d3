// Package vmedia builds the boot ISO a machine boots from its BMC's
// virtual CD drive when the appliance answers no DHCP on its network (a
// routed subnet): the installer's kernel and initramfs, and a kernel
// command line with the installer's parameters (the appliance's URL, the
// machine, its MAC, the workflow's credential) and the machine's static
// network configuration from IPAM (outpost.ip, outpost.gateway,
// outpost.dns, outpost.domain). The installer then reaches the appliance
// over routed HTTP.
//
// The installer configures its network with udhcpc
// (images/common/boot.sh) and waits for the lease file its udhcpc script
// writes. The ISO adds to its initramfs, as a second archive the kernel
// unpacks over the first, one file: that script, replaced. udhcpc runs
// it at start and after every DHCP attempt that got nothing; it then
// gives the interface the static configuration of the command line and
// writes the lease file as the installer's own script would. (A
// /bin/udhcpc ahead in PATH would not do: busybox's shell runs its own
// applets first.) The installer itself is unchanged.
//
// The ISO boots under BIOS through ISOLINUX (El Torito, no emulation),
// made by xorriso: xorriso (Debian's xorriso) and ISOLINUX (isolinux,
// with syslinux-common's ldlinux.c32) are the appliance's runtime
// dependencies for virtual media. A UEFI-bootable image (an EFI system
// partition in the ISO) is not made yet.
//
// The command line holds the workflow's credential: an ISO is a secret,
// served only at an unguessable URL for as long as the BMC needs it.
package vmedia
