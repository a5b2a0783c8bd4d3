package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// file.write and kexec on a real file system on a loop device: mounted
// for the action (its type detected or given), written or read, and
// unmounted.
func TestFileWriteOnDevice(t *testing.T) {
	tests := map[string]struct {
		mkfs []string
	}{
		"ext4": {mkfs: []string{"mkfs.ext4", "-q", "-F"}},
		"vfat": {mkfs: []string{"mkfs.vfat"}},
	}
	ran := 0
	for fstype, tt := range tests {
		if !kernelHas(fstype) {
			// The host's kernel decides, not a package: a container's
			// kernel may lack vfat. The installer's kernel has both; the
			// VM tests of appliance/e2e mount vfat in it.
			t.Logf("the kernel has no %s file system: not tested here", fstype)
			continue
		}
		ran++
		t.Run(fstype, func(t *testing.T) {
			lab.Require(t, "root")
			lab.Require(t, "losetup", tt.mkfs[0])
			dev := loopDevice(t, tt.mkfs)
			var kernel string
			f, _ := run(t, func(f *fakeAPI, cfg *Config) {
				cfg.System.(*fakeSystem).check = func(call string) {
					if fields := strings.Fields(call); fields[0] == "kexec-load" {
						b, err := os.ReadFile(fields[1]) // mounted while it loads
						kernel = string(b) + errString(err)
					}
				}
			},
				workflow.Action{Name: "hostname", Type: "file.write",
					Args: map[string]string{"device": dev, "path": "/etc/hostname", "content": "node-1\n", "mode": "0600"}},
				workflow.Action{Name: "kernel", Type: "file.write", Needs: []string{"hostname"},
					Args: map[string]string{"device": dev, "fstype": fstype, "path": "boot/vmlinuz", "content": "a kernel"}},
				workflow.Action{Name: "kexec", Type: "kexec", Needs: []string{"kernel"},
					Args: map[string]string{"device": dev, "kernel": "/boot/vmlinuz"}},
			)
			st := waitDone(t, f)
			if st.Status != workflow.Succeeded {
				t.Fatalf("workflow %s: %s", st.Status, st.Reason)
			}
			if kernel != "a kernel" {
				t.Errorf("kexec loaded %q", kernel)
			}
			if mounts := string(readFile(t, "/proc/self/mounts")); strings.Contains(mounts, dev+" ") {
				t.Errorf("%s is still mounted", dev)
			}
			dir := t.TempDir()
			if err := unix.Mount(dev, dir, fstype, unix.MS_RDONLY, ""); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(dir, 0)
			if got := string(readFile(t, filepath.Join(dir, "etc/hostname"))); got != "node-1\n" {
				t.Errorf("hostname = %q", got)
			}
			if fi, err := os.Stat(filepath.Join(dir, "etc/hostname")); fstype != "vfat" && (err != nil || fi.Mode().Perm() != 0o600) {
				t.Errorf("mode %v, %v", fi.Mode(), err)
			}
		})
	}
	if ran == 0 {
		t.Fatal("the kernel has neither ext4 nor vfat: file.write on a device is untested")
	}
}

// kernelHas reports whether the kernel mounts fstype (loading its
// module if it can).
func kernelHas(fstype string) bool {
	exec.Command("modprobe", "-q", fstype).Run()
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

// loopDevice makes a 32 MiB file system with mkfs and attaches it to a
// loop device until the test ends.
func loopDevice(t *testing.T, mkfs []string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32*mib); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sbin(mkfs[0]), append(mkfs[1:], img)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mkfs[0], err, out)
	}
	out, err := exec.Command(sbin("losetup"), "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v\n%s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(sbin("losetup"), "-d", dev).Run() })
	return dev
}

// sbin finds a program in PATH or the sbin directories.
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); exec.Command("test", "-x", p).Run() == nil {
			return p
		}
	}
	return name
}

func errString(err error) string {
	if err != nil {
		return " (" + err.Error() + ")"
	}
	return ""
}
