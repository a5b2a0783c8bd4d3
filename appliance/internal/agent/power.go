package agent

import (
	"context"

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
	// cmdline, and says how (for the action's result); KexecReboot then
	// boots it.
	KexecLoad(kernel, initrd, cmdline string) (how string, err error)
	// KexecReboot boots the kernel KexecLoad loaded.
	KexecReboot() error
}

// LinuxSystem is System through the Linux system calls, and kexec-tools
// to load a kernel where the installer has it (see KexecLoad).
type LinuxSystem struct {
	// KexecTool is kexec-tools' kexec program; "" is DefaultKexecTool.
	KexecTool string
}

// Sync is sync(2).
func (LinuxSystem) Sync() { unix.Sync() }

// Reboot is reboot(2) with LINUX_REBOOT_CMD_RESTART.
func (LinuxSystem) Reboot() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) }

// PowerOff is reboot(2) with LINUX_REBOOT_CMD_POWER_OFF.
func (LinuxSystem) PowerOff() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF) }

// KexecReboot is reboot(2) with LINUX_REBOOT_CMD_KEXEC.
func (LinuxSystem) KexecReboot() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC) }

// reboot reports success, then reboots.
func reboot(ctx context.Context, s *step) (string, error) {
	return terminal(s, "rebooting", s.cfg().System.Reboot)
}

// powerOff reports success, then powers the machine off.
func powerOff(ctx context.Context, s *step) (string, error) {
	return terminal(s, "powering off", s.cfg().System.PowerOff)
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
