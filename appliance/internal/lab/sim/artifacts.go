package sim

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// imageRaw is the size of the OS image before compression: random bytes,
// so that gzip does not shrink them.
const imageRaw = 4 << 20

// Artifacts is an artifact directory for an appliance to serve to
// simulated machines (over TFTP and HTTP), and the sizes the machines
// check what they fetch against: the iPXE binary for BIOS PXE, the
// installer's kernel and initrd, and an OS image for image.write.
type Artifacts struct {
	Dir string
	// BootFile is the iPXE binary the DHCP server names for BIOS PXE.
	BootFile string
	// Kernel and Initrd are the installer's, for its image record.
	Kernel, Initrd string
	// Image is the OS image's file name, a gzip'ed raw disk image.
	Image string

	// BootSize, KernelSize and InitrdSize are the files' sizes, which
	// the machines check what they fetch against.
	BootSize, KernelSize, InitrdSize int64
	ImageSize                        int64  // of the gzip'ed file
	ImageSHA256                      string // of the gzip'ed file, as the agent checks it
}

// NewArtifacts fills dir with undionly.kpxe, vmlinuz and installer.initrd
// from src (the images/out of `make images`, or any files of those
// names), with their .sha256 sidecars where src has them, and writes the
// OS image storm-os.raw.gz: 4 MiB of random bytes, gzip'ed, and its
// sidecar. An appliance opens artifacts through an os.Root, which refuses
// symlinks that leave it: hence links or copies.
func NewArtifacts(src, dir string) (*Artifacts, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	art := &Artifacts{Dir: dir, BootFile: "undionly.kpxe", Kernel: "vmlinuz", Initrd: "installer.initrd", Image: "storm-os.raw.gz"}
	for _, f := range []struct {
		name string
		size *int64
	}{{art.BootFile, &art.BootSize}, {art.Kernel, &art.KernelSize}, {art.Initrd, &art.InitrdSize}} {
		fi, err := os.Stat(filepath.Join(src, f.name))
		if err != nil {
			return nil, fmt.Errorf("boot artifact %s: %w (build them with `make images`)", f.name, err)
		}
		*f.size = fi.Size()
		for _, name := range []string{f.name, f.name + ".sha256"} {
			err := linkOrCopy(filepath.Join(src, name), filepath.Join(dir, name))
			if err != nil && !(os.IsNotExist(err) && name != f.name) {
				return nil, err
			}
		}
	}
	return art, art.writeImage()
}

// Installer is the record of an installer image, named name, that boots
// the kernel and initrd of art.
func (art *Artifacts) Installer(name string) *store.Image {
	return &store.Image{Name: name, Type: store.ImageInstaller, Kernel: art.Kernel, Initrd: art.Initrd, Cmdline: "panic=10"}
}

// OSImage is the record of the OS image of art, named name, for the
// image.write of a workflow.
func (art *Artifacts) OSImage(name string) *store.Image {
	return &store.Image{Name: name, Type: store.ImageOS, File: art.Image, Format: "raw.gz", SHA256: art.ImageSHA256, Size: uint64(art.ImageSize)}
}

// writeImage writes the OS image and its sha256 sidecar.
func (art *Artifacts) writeImage() error {
	raw := make([]byte, imageRaw)
	rand.Read(raw)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	art.ImageSHA256, art.ImageSize = hex.EncodeToString(sum[:]), int64(buf.Len())
	path := filepath.Join(art.Dir, art.Image)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(path+".sha256", []byte(art.ImageSHA256), 0o644)
}

// linkOrCopy hard-links src to dst, or copies it across file systems.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
