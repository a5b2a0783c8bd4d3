package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// fileWrite writes content to path, on device's file system if given.
func fileWrite(ctx context.Context, s *step) (string, error) {
	p, content, dev := s.arg("path"), s.arg("content"), s.arg("device")
	mode := os.FileMode(0o644)
	if m := s.arg("mode"); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o7777 {
			return "", fmt.Errorf("mode %q is not an octal file mode", m)
		}
		mode = unixMode(uint32(v))
	}
	if err := checkPath(p); err != nil {
		return "", err
	}
	write := func(root string) error {
		target, err := resolveIn(root, p)
		if err != nil {
			return err
		}
		return writeFile(s, target, []byte(content), mode)
	}
	where := p
	if dev != "" {
		where = p + " on " + dev
		if err := withMount(ctx, s, dev, s.arg("fstype"), false, write); err != nil {
			return "", err
		}
	} else if err := write(""); err != nil {
		return "", err
	}
	return fmt.Sprintf("wrote %d bytes to %s", len(content), where), nil
}

// writeFile writes b to name, creating its directory, with mode, and
// syncs it.
func writeFile(s *step, name string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		if cerr := f.Chmod(mode); cerr != nil && !errors.Is(cerr, os.ErrPermission) {
			err = cerr
		} else if cerr != nil {
			// vfat and the like have no modes.
			s.log.Warn("the file system keeps no mode", "path", name, "err", cerr)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// unixMode converts a Unix mode (such as 04755) to an os.FileMode.
func unixMode(v uint32) os.FileMode {
	m := os.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}
