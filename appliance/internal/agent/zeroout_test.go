package agent

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// TestDiskWriter: an image of data, a chunk of zeros, data and a short
// tail of zeros lands byte for byte on a disk that held other bytes: on
// a loop device, the whole chunk of zeros is zeroed by the device
// (BLKZEROOUT) and the short tail written; on a regular file, all is
// written.
func TestDiskWriter(t *testing.T) {
	data := bytes.Repeat([]byte("outpost!"), chunk/8)
	parts := [][]byte{data, make([]byte, chunk), data[:chunk/2], make([]byte, 1000)}
	want := bytes.Join(parts, nil)
	tests := map[string]struct {
		loop       bool
		wantZeroed int64
	}{
		"loop device":  {loop: true, wantZeroed: chunk},
		"regular file": {loop: false, wantZeroed: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(img, bytes.Repeat([]byte{0xaa}, 4*chunk), 0o644); err != nil {
				t.Fatal(err)
			}
			path := img
			if tc.loop {
				lab.Require(t, "root")
				lab.Require(t, "losetup")
				out, err := exec.Command(sbin("losetup"), "--find", "--show", img).CombinedOutput()
				if err != nil {
					t.Fatalf("losetup: %v\n%s", err, out)
				}
				path = strings.TrimSpace(string(out))
				t.Cleanup(func() { exec.Command(sbin("losetup"), "-d", path).Run() })
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w := newDiskWriter(f)
			for _, p := range parts {
				if err := w.write(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(want)+512)
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(want)], want) {
				t.Error("the disk does not hold the image")
			}
			if !bytes.Equal(got[len(want):], bytes.Repeat([]byte{0xaa}, 512)) {
				t.Error("bytes past the image changed")
			}
			if w.zeroed != tc.wantZeroed || w.off != int64(len(want)) {
				t.Errorf("zeroed %d, at %d; want %d at %d", w.zeroed, w.off, tc.wantZeroed, len(want))
			}
		})
	}
}
