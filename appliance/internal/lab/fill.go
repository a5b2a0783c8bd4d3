package lab

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// MountTmpfs mounts a tmpfs of size (mount's size=, such as "64m") on
// dir, made if missing, so that what keeps its data there can run out
// of space without the host's filesystems doing so, and unmounts it
// (lazily: a process may still hold files) when the test ends. It needs
// root.
func MountTmpfs(t T, dir, size string) {
	t.Helper()
	Require(t, "root")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("lab: mount a tmpfs of %s on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("lab: unmount %s: %v", dir, err)
		}
	})
}

// FillFS writes the file path until its filesystem has no space left,
// down to the last bytes, and returns how much it wrote.
func FillFS(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for len(buf) > 0 {
		k, err := f.Write(buf)
		n += int64(k)
		switch {
		case errors.Is(err, syscall.ENOSPC):
			buf = buf[:len(buf)/2]
		case err != nil:
			return n, fmt.Errorf("lab: fill %s: %w", path, err)
		}
	}
	return n, nil
}
