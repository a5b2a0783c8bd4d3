package agent

import (
	"bytes"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// diskWriter writes an image to a disk from its start. On a block
// device, a whole chunk of zeros (most of a raw image's free space) is
// not sent: the device zeroes the range itself (BLKZEROOUT, which the
// kernel turns into virtio's and NVMe's write-zeroes command, or writes
// zeros itself where the device has none). Should the ioctl fail, the
// zeros are written, as everything is on a regular file.
type diskWriter struct {
	f      *os.File
	off    int64
	block  bool   // f is a block device that took BLKZEROOUT so far
	zeros  []byte // a chunk of zeros, to compare with
	zeroed int64  // bytes the device zeroed
}

func newDiskWriter(f *os.File) *diskWriter {
	fi, err := f.Stat()
	block := err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	w := &diskWriter{f: f, block: block}
	if block {
		w.zeros = make([]byte, chunk)
	}
	return w
}

// write writes p at the writer's offset and moves past it.
func (w *diskWriter) write(p []byte) error {
	if w.block && len(p)%512 == 0 && len(p) <= len(w.zeros) && bytes.Equal(p, w.zeros[:len(p)]) {
		if err := zeroOut(w.f, w.off, int64(len(p))); err == nil {
			w.off += int64(len(p))
			w.zeroed += int64(len(p))
			return nil
		}
		w.block, w.zeros = false, nil // not supported here: write from now on
	}
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return err
}

// zeroOut has the block device f zero n bytes from off (BLKZEROOUT).
func zeroOut(f *os.File, off, n int64) error {
	rng := [2]uint64{uint64(off), uint64(n)}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&rng)))
	if errno != 0 {
		return errno
	}
	return nil
}
