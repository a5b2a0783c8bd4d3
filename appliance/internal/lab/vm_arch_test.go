package lab

import (
	"slices"
	"strings"
	"testing"
)

// TestQEMUArgsArm64 checks an arm64 VM's command line: the aarch64
// emulator's virt machine with AAVMF and no (x86) NIC option ROM; and that
// an x86 VM's is as before.
func TestQEMUArgsArm64(t *testing.T) {
	cfg := VMConfig{Tap: "tap0", MAC: "52:54:00:00:00:01", Arch: Arm64, Firmware: UEFI, MemoryMB: 1024}
	if err := cfg.checkArch(); err != nil {
		t.Fatal(err)
	}
	args, err := qemuArgs(cfg, 1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{"-machine virt -cpu cortex-a57",
		"if=pflash,format=raw,unit=0,readonly=on,file=" + AAVMFCode, "romfile=", "-accel tcg"} {
		if !strings.Contains(line, want) {
			t.Errorf("command line lacks %q: %s", want, line)
		}
	}
	if args[0] != "qemu-system-aarch64" {
		t.Errorf("emulator %s, want qemu-system-aarch64", args[0])
	}

	x86 := VMConfig{Tap: "tap0", MAC: "52:54:00:00:00:02", Firmware: UEFI, MemoryMB: 1024}
	if err := x86.checkArch(); err != nil {
		t.Fatal(err)
	}
	args, err = qemuArgs(x86, 2, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if args[0] != "qemu-system-x86_64" || slices.Contains(args, "virt") || !strings.Contains(strings.Join(args, " "), OVMFCode) {
		t.Errorf("x86 command line changed: %s", strings.Join(args, " "))
	}
}

// TestCheckArch checks that an arch the lab cannot run, or arm64 without
// UEFI, is refused with the reason.
func TestCheckArch(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  VMConfig
		want string
	}{
		"arm64 with BIOS":       {VMConfig{Arch: Arm64}, "arm64 boots with UEFI (AAVMF), not BIOS"},
		"arm64 with SecureBoot": {VMConfig{Arch: Arm64, Firmware: SecureBoot}, "not SecureBoot"},
		"riscv":                 {VMConfig{Arch: "riscv64", Firmware: UEFI}, `unknown arch "riscv64"`},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tc.cfg.checkArch(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkArch() = %v, want %q", err, tc.want)
			}
		})
	}
}
