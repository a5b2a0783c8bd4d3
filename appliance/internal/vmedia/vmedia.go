package vmedia

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Defaults of Config's tools (Debian's paths).
const (
	DefaultXorriso  = "xorriso"
	DefaultIsolinux = "/usr/lib/ISOLINUX/isolinux.bin"
	DefaultLdlinux  = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
)

// Network is a machine's static network configuration.
type Network struct {
	// Address is the machine's address and its subnet's prefix length.
	// Required.
	Address netip.Prefix
	// Gateway is the default route's next hop; required to reach a
	// routed appliance.
	Gateway netip.Addr
	// DNS are the name servers; optional.
	DNS []netip.Addr
	// Domain is the search domain; optional.
	Domain string
}

// Config describes one boot ISO.
type Config struct {
	// Kernel and Initrd are the installer's kernel and initramfs files.
	// Required.
	Kernel, Initrd string
	// Params are the installer's kernel parameters, name=value
	// (agentproto's outpost.url, outpost.token, ...), in order. A value
	// may not hold a space, a quote or a control character.
	Params [][2]string
	// Network is the static configuration the installer takes.
	Network Network
	// Xorriso is the xorriso program (DefaultXorriso).
	Xorriso string
	// Isolinux and Ldlinux are ISOLINUX's boot image and its
	// ldlinux.c32 (DefaultIsolinux, DefaultLdlinux).
	Isolinux, Ldlinux string
}

// ErrInvalid is wrapped by the errors of a Config that cannot make an
// ISO; they name the field.
var ErrInvalid = errors.New("vmedia: invalid")

// Cmdline is the kernel command line of cfg: the consoles, Params, then
// the network's parameters.
func Cmdline(cfg Config) (string, error) {
	n := cfg.Network
	if !n.Address.IsValid() || !n.Address.Addr().Is4() {
		return "", fmt.Errorf("%w: Network.Address %v is not an IPv4 address with a prefix length", ErrInvalid, n.Address)
	}
	params := append([][2]string{{"console", "tty0"}, {"console", "ttyS0,115200"}}, cfg.Params...)
	params = append(params, [2]string{"outpost.ip", n.Address.String()})
	if n.Gateway.IsValid() {
		if !n.Address.Masked().Contains(n.Gateway) {
			return "", fmt.Errorf("%w: Network.Gateway %s is not in %s", ErrInvalid, n.Gateway, n.Address.Masked())
		}
		params = append(params, [2]string{"outpost.gateway", n.Gateway.String()})
	}
	if len(n.DNS) > 0 {
		dns := make([]string, len(n.DNS))
		for i, a := range n.DNS {
			dns[i] = a.String()
		}
		params = append(params, [2]string{"outpost.dns", strings.Join(dns, ",")})
	}
	if n.Domain != "" {
		params = append(params, [2]string{"outpost.domain", n.Domain})
	}
	var b strings.Builder
	for i, p := range params {
		if p[0] == "" || !plain(p[0]) || !plain(p[1]) {
			return "", fmt.Errorf("%w: parameter %q: a name and a value without spaces, quotes or control characters", ErrInvalid, p[0])
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p[0] + "=" + p[1])
	}
	return b.String(), nil
}

// plain reports whether s can stand in a kernel command line (and in
// ISOLINUX's APPEND) as it is.
func plain(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r >= 0x7f })
}

func (cfg *Config) defaults() {
	if cfg.Xorriso == "" {
		cfg.Xorriso = DefaultXorriso
	}
	if cfg.Isolinux == "" {
		cfg.Isolinux = DefaultIsolinux
	}
	if cfg.Ldlinux == "" {
		cfg.Ldlinux = DefaultLdlinux
	}
}

// Build writes cfg's ISO to the file out (mode 0600: it holds the
// credential), through a temporary tree and file beside out, which it
// removes.
func Build(ctx context.Context, cfg Config, out string) error {
	cfg.defaults()
	cmdline, err := Cmdline(cfg)
	if err != nil {
		return err
	}
	for _, f := range []struct{ name, path string }{{"Kernel", cfg.Kernel}, {"Initrd", cfg.Initrd}, {"Isolinux", cfg.Isolinux}, {"Ldlinux", cfg.Ldlinux}} {
		if f.path == "" {
			return fmt.Errorf("%w: no %s", ErrInvalid, f.name)
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("vmedia: %s: %w", f.name, err)
		}
	}
	tree, err := os.MkdirTemp(filepath.Dir(out), ".vmedia-tree-")
	if err != nil {
		return fmt.Errorf("vmedia: %w", err)
	}
	defer os.RemoveAll(tree)
	if err := writeTree(tree, cfg, cmdline); err != nil {
		return err
	}
	return xorriso(ctx, cfg.Xorriso, tree, out)
}

// writeTree lays out the ISO's files in dir: ISOLINUX and its
// configuration, the kernel, the installer's initramfs and the overlay
// archive. The kernel and initramfs are linked when they can be, not
// copied.
func writeTree(dir string, cfg Config, cmdline string) error {
	for _, d := range []string{"isolinux", "boot"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return fmt.Errorf("vmedia: %w", err)
		}
	}
	for _, f := range [][2]string{
		{cfg.Isolinux, "isolinux/isolinux.bin"}, {cfg.Ldlinux, "isolinux/ldlinux.c32"},
		{cfg.Kernel, "boot/vmlinuz"}, {cfg.Initrd, "boot/installer.img"},
	} {
		if err := linkOrCopy(f[0], filepath.Join(dir, f[1])); err != nil {
			return err
		}
	}
	// ISOLINUX loads the two initrds one after the other, aligned, as
	// one initramfs.
	conf := "DEFAULT outpost\nPROMPT 0\nTIMEOUT 0\nLABEL outpost\n  KERNEL /boot/vmlinuz\n" +
		"  INITRD /boot/installer.img,/boot/overlay.img\n  APPEND " + cmdline + "\n"
	files := map[string][]byte{"isolinux/isolinux.cfg": []byte(conf), "boot/overlay.img": overlay()}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("vmedia: %w", err)
		}
	}
	return nil
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("vmedia: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return fmt.Errorf("vmedia: %w", err)
	}
	return nil
}

// xorriso makes the ISO: ISO 9660 with Rock Ridge and Joliet, and an
// El Torito no-emulation boot image (ISOLINUX, with its boot info
// table).
func xorriso(ctx context.Context, prog, tree, out string) error {
	tmp := out + ".tmp"
	args := []string{"-as", "mkisofs", "-quiet", "-o", tmp, "-R", "-J", "-V", "OUTPOST_VMEDIA",
		"-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
		"-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", tree}
	cmd := exec.CommandContext(ctx, prog, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("vmedia: xorriso: %w: %s", err, lastLines(stderr.String(), 5))
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("vmedia: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("vmedia: %w", err)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}
