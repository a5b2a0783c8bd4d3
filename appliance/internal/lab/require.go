package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// debianPackages names the Debian package that provides each program or
// file the lab knows about.
var debianPackages = map[string]string{
	"ip":                 "iproute2",
	"curl":               "curl",
	"openssl":            "openssl",
	"qemu-system-x86_64": "qemu-system-x86",
	"qemu-img":           "qemu-utils",
	"dnsmasq":            "dnsmasq",
	"kea-dhcp4":          "kea-dhcp4-server",
	"perfdhcp":           "kea-admin",
	"dhclient":           "isc-dhcp-client",
	"udhcpc":             "udhcpc",
	"busybox":            "busybox-static",
	"cpio":               "cpio",
	"tftp":               "tftp-hpa",
	"atftp":              "atftp",
	"in.tftpd":           "tftpd-hpa",
	"ipmi_sim":           "openipmi",
	"ipmitool":           "ipmitool",
	"redfishtool":        "redfishtool",
	"xorriso":            "xorriso",
	"chromium":           "chromium",
	"chromedriver":       "chromium-driver",
	"certutil":           "libnss3-tools",
	"/dev/net/tun":       "the tun kernel module: modprobe tun",
	"/dev/kvm":           "KVM (not needed: the lab runs QEMU with -accel tcg)",
}

// debianPrefixes names the package for files under a directory.
var debianPrefixes = []struct{ prefix, pkg string }{
	{"/usr/lib/ipxe/qemu/", "ipxe-qemu"},
	{"/usr/lib/ipxe/", "ipxe"},
	{"/usr/share/OVMF/", "ovmf"},
	{"/usr/lib/python3/dist-packages/sushy", "python3-sushy"},
	{"/usr/lib/ISOLINUX/", "isolinux"},
	{"/usr/lib/syslinux/", "syslinux-common"},
	{"/usr/share/seabios/", "seabios"},
	{"/boot/vmlinuz", "linux-image-amd64"},
}

// CI reports whether the tests run in continuous integration (the CI
// environment variable is set), where a missing requirement is a failure.
func CI() bool { return os.Getenv("CI") != "" }

// Require checks that the test can use each of what: "root" (effective
// uid 0), an absolute path (a file that must exist) or a program name
// (looked up in PATH and the sbin directories). When something is missing
// it fails the test if CI is set and skips it otherwise, naming what is
// missing and the Debian package that provides it.
func Require(t T, what ...string) {
	t.Helper()
	var missing []string
	for _, w := range what {
		if msg := check(w); msg != "" {
			missing = append(missing, msg)
		}
	}
	if len(missing) > 0 {
		Unavailable(t, strings.Join(missing, "; "))
	}
}

// Unavailable fails the test in CI and skips it elsewhere.
func Unavailable(t T, msg string) {
	t.Helper()
	if CI() {
		t.Fatalf("lab: %s (CI is set: a missing requirement is a failure)", msg)
	}
	t.Skipf("lab: %s", msg)
}

// check returns "" if w is available, else what is missing.
func check(w string) string {
	switch {
	case w == "root":
		if os.Geteuid() != 0 {
			return "needs root (network namespaces, taps)"
		}
		return ""
	case filepath.IsAbs(w):
		if _, err := os.Stat(w); err != nil {
			return fmt.Sprintf("missing %s (%s)", w, install(w))
		}
		return ""
	default:
		if _, err := lookPath(w); err != nil {
			return fmt.Sprintf("missing program %s (%s)", w, install(w))
		}
		return ""
	}
}

// install says how to get w.
func install(w string) string {
	if p, ok := debianPackages[w]; ok {
		if strings.Contains(p, " ") {
			return p
		}
		return "apt-get install " + p
	}
	for _, d := range debianPrefixes {
		if strings.HasPrefix(w, d.prefix) {
			return "apt-get install " + d.pkg
		}
	}
	return "no known Debian package"
}

// sbinDirs are searched after PATH: daemons live there and a test's PATH
// may lack them.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// lookPath finds a program in PATH or the sbin directories.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("lab: %s: %w", name, exec.ErrNotFound)
}

// mustLookPath is lookPath for programs Require has already checked.
func mustLookPath(t T, name string) string {
	t.Helper()
	p, err := lookPath(name)
	if errors.Is(err, exec.ErrNotFound) {
		Require(t, name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}
