package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/outposthq/outpost/internal/backoff"
)

// preferredFS are tried first, in order, when a file system's type is
// not given: those of the disks an installer writes.
var preferredFS = []string{"vfat", "ext4", "xfs", "btrfs"}

// deviceWait is how long a device may take to appear (its partitions are
// created when the kernel reads the partition table image.write wrote).
const deviceWait = 10 * time.Second

// withMount mounts device (of type fstype, or each type in turn when it
// is "") on a new directory, calls fn with that directory and unmounts it.
func withMount(ctx context.Context, s *step, device, fstype string, readOnly bool, fn func(dir string) error) error {
	if err := waitFor(ctx, device, deviceWait); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(s.cfg().MountDir, "outpost-mnt-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	types := []string{fstype}
	if fstype == "" {
		types = fsCandidates(filepath.Join(s.cfg().Root, "proc/filesystems"))
	}
	var flags uintptr
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	var tried []string
	mounted := ""
	for _, t := range types {
		err := unix.Mount(device, dir, t, flags, "")
		if err == nil {
			mounted = t
			break
		}
		tried = append(tried, t+": "+err.Error())
	}
	if mounted == "" {
		return fmt.Errorf("mount %s (%s)", device, strings.Join(tried, "; "))
	}
	s.log.Info("mounted", "device", device, "fstype", mounted, "dir", dir, "read_only", readOnly)
	ferr := fn(dir)
	if err := unmount(dir); err != nil {
		return errors.Join(ferr, fmt.Errorf("unmount %s: %w", device, err))
	}
	return ferr
}

// unmount unmounts dir, waiting out a short-lived EBUSY, and detaches it
// as a last resort.
func unmount(dir string) error {
	var err error
	for range 20 {
		if err = unix.Unmount(dir, 0); err != unix.EBUSY {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if derr := unix.Unmount(dir, unix.MNT_DETACH); derr != nil {
		return err
	}
	return nil
}

// fsCandidates lists the block file-system types to try: preferredFS,
// then the others the kernel knows (the lines of /proc/filesystems
// without "nodev").
func fsCandidates(procFilesystems string) []string {
	types := slices.Clone(preferredFS)
	f, err := os.Open(procFilesystems)
	if err != nil {
		return types
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 1 || slices.Contains(types, fields[0]) || fields[0] == "fuseblk" {
			continue // nodev, blank, known or not mountable by type
		}
		types = append(types, fields[0])
	}
	return types
}

// waitFor waits until name exists, for at most d.
func waitFor(ctx context.Context, name string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		_, err := os.Stat(name)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			return err
		}
		if !backoff.Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// checkPath refuses a path with a ".." element: an action's path names a
// file inside its file system, never outside it.
func checkPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "..") {
		return fmt.Errorf("path %q: \"..\" is not allowed", p)
	}
	return nil
}

// resolveIn returns where path p of the file system mounted at root is on
// this machine, resolving symbolic links as if root were "/" (absolute
// links start again at root, ".." stops at it), so no link leads out of
// root. The elements from the first missing one on are kept as they are.
// With root "" it returns p itself, made absolute.
func resolveIn(root, p string) (string, error) {
	if err := checkPath(p); err != nil {
		return "", err
	}
	if root == "" {
		return filepath.Join("/", p), nil
	}
	parts := split(p)
	cur := "" // relative to root, clean, never above it
	for links := 0; len(parts) > 0; {
		name := parts[0]
		parts = parts[1:]
		if name == ".." {
			cur = parent(cur)
			continue
		}
		next := path.Join(cur, name)
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			cur = next
			for _, n := range parts {
				if n == ".." {
					cur = parent(cur)
				} else {
					cur = path.Join(cur, n)
				}
			}
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("path %q: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = ""
		}
		parts = append(split(target), parts...)
	}
	return filepath.Join(root, cur), nil
}

// split splits a slash-separated path into its elements, without empty
// ones and ".".
func split(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" && e != "." {
			out = append(out, e)
		}
	}
	return out
}

// parent is cur's parent, "" (root) at the top.
func parent(cur string) string {
	if d := path.Dir(cur); d != "." && d != "/" {
		return d
	}
	return ""
}
