package agent

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// System is the machine's power: the calls that end the installer. Tests
// give a fake, so they never reboot the host.
type System interface {
	// Sync flushes the file systems' buffers to the disks.
	Sync()
	// Reboot restarts the machine through its firmware.
	Reboot() error
	// PowerOff turns the machine off.
	PowerOff() error
	// KexecLoad loads the kernel (and initrd, if not "") to boot with
	// cmdline; KexecReboot then boots it.
	KexecLoad(kernel, initrd, cmdline string) error
	// KexecReboot boots the kernel KexecLoad loaded.
	KexecReboot() error
}

// LinuxSystem is System through the Linux system calls.
type LinuxSystem struct{}

// Sync is sync(2).
func (LinuxSystem) Sync() { unix.Sync() }

// Reboot is reboot(2) with LINUX_REBOOT_CMD_RESTART.
func (LinuxSystem) Reboot() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) }

// PowerOff is reboot(2) with LINUX_REBOOT_CMD_POWER_OFF.
func (LinuxSystem) PowerOff() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF) }

// KexecReboot is reboot(2) with LINUX_REBOOT_CMD_KEXEC.
func (LinuxSystem) KexecReboot() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC) }

// KexecLoad is kexec_file_load(2).
func (LinuxSystem) KexecLoad(kernel, initrd, cmdline string) error {
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

// reboot reports success, then reboots.
func reboot(ctx context.Context, s *step) (string, error) {
	return terminal(s, "rebooting", s.cfg().System.Reboot)
}

// powerOff reports success, then powers the machine off.
func powerOff(ctx context.Context, s *step) (string, error) {
	return terminal(s, "powering off", s.cfg().System.PowerOff)
}

// kexec loads the kernel (from device's file system, mounted read-only
// for the load, if given), reports success, then boots it.
func kexec(ctx context.Context, s *step) (string, error) {
	kernel, initrd, cmdline := s.arg("kernel"), s.arg("initrd"), s.arg("cmdline")
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
		return s.cfg().System.KexecLoad(k, i, cmdline)
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
	return terminal(s, "booting "+kernel, s.cfg().System.KexecReboot)
}

// terminal reports the attempt succeeded and, once the appliance has
// acknowledged it, ends the attempt's and the run's spans and sends
// them, syncs the disks and calls do: the installer's last step. If the
// appliance refuses the report, the machine stays up.
func terminal(s *step, what string, do func() error) (string, error) {
	if !s.finishOK(what) {
		s.log.Warn("the appliance did not acknowledge the result: not " + what)
		return "", errReported
	}
	s.log.Info("result acknowledged; " + what)
	s.span.End()
	s.r.endRun(nil)
	s.r.tr.flush(s.log, "before "+what)
	sys := s.cfg().System
	sys.Sync()
	if err := do(); err != nil {
		s.log.Error(what+" failed", "err", err)
	}
	return "", errReported
}
