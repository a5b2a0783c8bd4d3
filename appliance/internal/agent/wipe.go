package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const mib = 1 << 20

// chunk is the size of the agent's disk writes.
const chunk = 4 * mib

// diskWipe erases a disk: mode quick (the default) zeroes its first and
// last MiB, mode zero all of it.
func diskWipe(ctx context.Context, s *step) (string, error) {
	dev, mode := s.arg("device"), s.arg("mode")
	if mode == "" {
		mode = "quick"
	}
	if mode != "quick" && mode != "zero" {
		return "", fmt.Errorf("mode %q: want quick or zero", mode)
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("size of %s: %w", dev, err)
	}
	if mode == "quick" {
		err = zeroRange(ctx, f, 0, min(mib, size), nil)
		if err == nil && size > mib {
			err = zeroRange(ctx, f, max(mib, size-mib), size, nil)
		}
	} else {
		err = zeroRange(ctx, f, 0, size, func(done int64, rate float64) {
			s.Progress(percent(done, size), fmt.Sprintf("zeroed %s of %s (%.1f MiB/s)", sizeStr(done), sizeStr(size), rate))
		})
	}
	if err != nil {
		return "", fmt.Errorf("wipe %s: %w", dev, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", dev, err)
	}
	rereadPartitions(s, f)
	return fmt.Sprintf("wiped %s (%s, %s)", dev, mode, sizeStr(size)), nil
}

// zeroRange writes zeros over [from, to) of f, calling progress (if not
// nil) after each chunk with the bytes written and the rate in MiB/s.
func zeroRange(ctx context.Context, f *os.File, from, to int64, progress func(int64, float64)) error {
	zeros := make([]byte, min(chunk, max(to-from, 0)))
	start := time.Now()
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
		if progress != nil {
			progress(off-from, rate(off-from, time.Since(start)))
		}
	}
	return nil
}

// rereadPartitions asks the kernel to read a block device's partition
// table again (BLKRRPART), so its partitions match what was written. A
// regular file (in tests) has none.
func rereadPartitions(s *step, f *os.File) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return
	}
	for range 5 {
		err = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: a partition or a device without partitions
		s.log.Warn("the kernel did not re-read the partition table", "device", f.Name(), "err", err)
	}
}

// percent is done as a percentage of total (0 if total is unknown).
func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(min(100, done*100/total))
}

// rate is n bytes in d, in MiB/s.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / mib / d.Seconds()
}

// sizeStr shows a byte count in MiB.
func sizeStr(n int64) string {
	switch {
	case n >= 10*mib:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= mib/10:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	}
	return fmt.Sprintf("%d bytes", n)
}
