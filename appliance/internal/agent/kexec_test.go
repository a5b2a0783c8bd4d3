package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeKexecTool writes a shell script standing in for kexec-tools' kexec:
// it records its arguments, one per line, in the file it returns, prints
// out and exits with status.
func fakeKexecTool(t *testing.T, out string, status int) (tool, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	tool, argsFile = filepath.Join(dir, "kexec"), filepath.Join(dir, "args")
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >" + argsFile +
		"\necho '" + out + "'\nexit " + strconv.Itoa(status) + "\n"
	if err := os.WriteFile(tool, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return tool, argsFile
}

// KexecLoad loads with kexec-tools, without its integrity checks, and
// says so; without an initrd it passes none; an uncompressed (ELF) kernel
// gets Linux's boot parameters.
func TestKexecLoadTool(t *testing.T) {
	vmlinux := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(vmlinux, []byte("\x7fELF\x02\x01\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		kernel, initrd string
		want           []string
	}{
		"initrd":    {kernel: "/mnt/vmlinuz", initrd: "/mnt/initrd.img", want: []string{"-l", "-i", "--command-line=root=/dev/vda1 console=ttyS0", "--initrd=/mnt/initrd.img", "/mnt/vmlinuz"}},
		"no initrd": {kernel: "/mnt/vmlinuz", want: []string{"-l", "-i", "--command-line=root=/dev/vda1 console=ttyS0", "/mnt/vmlinuz"}},
		"vmlinux":   {kernel: vmlinux, initrd: "/mnt/initrd.img", want: []string{"-l", "-i", "--command-line=root=/dev/vda1 console=ttyS0", "--args-linux", "--initrd=/mnt/initrd.img", vmlinux}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tool, argsFile := fakeKexecTool(t, "", 0)
			how, err := LinuxSystem{KexecTool: tool}.KexecLoad(tt.kernel, tt.initrd, "root=/dev/vda1 console=ttyS0")
			if err != nil || how != "kexec_load" {
				t.Fatalf("KexecLoad = %q, %v; want kexec_load", how, err)
			}
			got := strings.Split(strings.TrimSpace(string(readFile(t, argsFile))), "\n")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("kexec's arguments (-want +got):\n%s", diff)
			}
		})
	}
}

// Where kexec-tools is missing or fails, KexecLoad falls back to
// kexec_file_load(2); a file that is no kernel fails both, and the error
// says why each failed. (The system call refuses it before it loads
// anything: the host is not touched.)
func TestKexecLoadFallback(t *testing.T) {
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	failing, _ := fakeKexecTool(t, "Cannot determine the file type of "+kernel, 1)
	tests := map[string]struct {
		tool string
		want []string
	}{
		"missing": {tool: filepath.Join(t.TempDir(), "kexec"), want: []string{"kexec-tools: stat", "no such file", "kexec_file_load " + kernel}},
		"failing": {tool: failing, want: []string{"kexec-tools " + failing + " -l: exit status 1: Cannot determine the file type", "kexec_file_load " + kernel}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			how, err := LinuxSystem{KexecTool: tt.tool}.KexecLoad(kernel, "", "console=ttyS0")
			if err == nil {
				t.Fatalf("KexecLoad of a file that is no kernel = %q, nil; want an error", how)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
