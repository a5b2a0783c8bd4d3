package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultKexecTool is where the installer's initramfs has kexec-tools'
// kexec (images/build.sh packs it).
const DefaultKexecTool = "/sbin/kexec"

// kexec loads the kernel (from device's file system, mounted read-only
// for the load, if given), reports success, then boots it.
func kexec(ctx context.Context, s *step) (string, error) {
	kernel, initrd, cmdline := s.arg("kernel"), s.arg("initrd"), s.arg("cmdline")
	var how string
	load := func(dir string) error {
		k, err := resolveIn(dir, kernel)
		if err != nil {
			return err
		}
		var i string
		if initrd != "" {
			if i, err = resolveIn(dir, initrd); err != nil {
				return err
			}
		}
		how, err = s.cfg().System.KexecLoad(k, i, cmdline)
		return err
	}
	var err error
	if dev := s.arg("device"); dev != "" {
		err = withMount(ctx, s, dev, s.arg("fstype"), true, load)
	} else {
		err = load("")
	}
	if err != nil {
		return "", fmt.Errorf("load kernel %s: %w", kernel, err)
	}
	s.log.Info("kernel loaded", "kernel", kernel, "how", how)
	return terminal(s, "booting "+kernel+" ("+how+")", s.cfg().System.KexecReboot)
}

// KexecLoad loads the kernel with kexec-tools (KexecTool) through
// kexec_load(2) without its integrity checks (-i): the installer has just
// written and verified the image, and the checks hash the kernel and the
// initrd (the purgatory's, before the new kernel starts), which takes
// seconds under emulation. Where that program is missing or fails
// (kexec_load is refused under lockdown, as with Secure Boot), it loads
// with kexec_file_load(2), which the kernel verifies and hashes itself.
// how names the system call that loaded the kernel.
func (s LinuxSystem) KexecLoad(kernel, initrd, cmdline string) (how string, err error) {
	tool := s.KexecTool
	if tool == "" {
		tool = DefaultKexecTool
	}
	terr := kexecTool(tool, kernel, initrd, cmdline)
	if terr == nil {
		return "kexec_load", nil
	}
	if err := kexecFileLoad(kernel, initrd, cmdline); err != nil {
		return "", errors.Join(terr, err)
	}
	if errors.Is(terr, fs.ErrNotExist) {
		return "kexec_file_load", nil
	}
	return "kexec_file_load; " + terr.Error(), nil
}

// kexecTool loads the kernel by running tool, kexec-tools' kexec: its
// error names the program and ends with its output's last line.
func kexecTool(tool, kernel, initrd, cmdline string) error {
	if _, err := os.Stat(tool); err != nil {
		return fmt.Errorf("kexec-tools: %w", err)
	}
	args := []string{"-l", "-i", "--command-line=" + cmdline}
	if isELF(kernel) {
		// An uncompressed kernel (vmlinux): kexec-tools' elf-x86_64
		// loader passes ELF boot notes by default, which take no initrd
		// ("Ramdisks not supported with generic elf arguments") and which
		// Linux does not read; --args-linux boots it as the bzImage
		// loader would, with boot parameters.
		args = append(args, "--args-linux")
	}
	if initrd != "" {
		args = append(args, "--initrd="+initrd)
	}
	out, err := exec.Command(tool, append(args, kernel)...).CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("kexec-tools %s -l: %w: %s", tool, err, lines[len(lines)-1])
	}
	return nil
}

// isELF reports whether file begins with ELF's magic number: a kernel
// that is a vmlinux rather than a bzImage.
func isELF(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "\x7fELF"
}

// kexecFileLoad is kexec_file_load(2).
func kexecFileLoad(kernel, initrd, cmdline string) error {
	k, err := os.Open(kernel)
	if err != nil {
		return err
	}
	defer k.Close()
	initrdFd, flags := -1, unix.KEXEC_FILE_NO_INITRAMFS
	if initrd != "" {
		f, err := os.Open(initrd)
		if err != nil {
			return err
		}
		defer f.Close()
		initrdFd, flags = int(f.Fd()), 0
	}
	if err := unix.KexecFileLoad(int(k.Fd()), initrdFd, cmdline, flags); err != nil {
		return fmt.Errorf("kexec_file_load %s: %w", kernel, err)
	}
	return nil
}
