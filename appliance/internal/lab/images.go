package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Images are the boot artifacts images/build.sh makes, by absolute path.
// Each has a sidecar "<path>.sha256" holding its hex digest.
type Images struct {
	Dir          string // images/out, or the directory given to BuildImagesTo
	Kernel       string // vmlinuz: Debian's kernel
	TestInitrd   string // test-initrd.img: prints OUTPOST-BOOT-OK, powers off
	UndionlyKPXE string // undionly.kpxe: iPXE for BIOS PXE
	IPXEEFI      string // ipxe.efi: iPXE for UEFI, with its own NIC drivers
	SnponlyEFI   string // snponly.efi: iPXE for UEFI over the firmware's SNP
	// InstallerInitrd is installer.initrd, the in-memory installer booted
	// with Kernel: it loads drivers, configures the outpost.mac interface
	// with DHCP and runs the agent.
	InstallerInitrd string
	// TestOSGz, TestOSZst and TestOSXz are one raw disk image (MBR, a FAT
	// partition, SYSLINUX) compressed with gzip, zstd and xz. It boots
	// the test OS, which prints OUTPOST-TESTOS-BOOTED from disk, then its
	// hostname from the metadata service.
	TestOSGz  string // testos.raw.gz
	TestOSZst string // testos.raw.zst
	TestOSXz  string // testos.raw.xz
	// TestOSEFIGz is the same test OS on a GPT disk whose EFI system
	// partition boots it through Debian's signed shim and GRUB, under
	// Secure Boot too; it also prints OUTPOST-TESTOS secureboot=<state>.
	TestOSEFIGz string // testos-efi.raw.gz
	// ShimEFI and GRUBNetEFI are Debian's signed shim and GRUB network
	// image, a Secure Boot machine's network boot.
	ShimEFI    string // shimx64.efi
	GRUBNetEFI string // grubx64.efi
	// The arm64 artifacts (images/build-arm64.sh): Debian's signed arm64
	// GRUB network image, its kernel, the installer for it and the test
	// OS on a GPT disk booting arm64 GRUB.
	GRUBNetARM64         string // grubaa64.efi
	KernelARM64          string // vmlinuz-arm64
	InstallerInitrdARM64 string // installer-arm64.initrd
	TestOSARM64Gz        string // testos-arm64.raw.gz
}

var images struct {
	once    sync.Once
	imgs    Images
	err     error
	missing bool // err is a missing input, not a broken build
}

// BuildImages runs images/build.sh (once per test binary; it is quick when
// the artifacts are up to date) and returns where they are. A missing
// input package fails the test in CI and skips it elsewhere.
func BuildImages(t T) Images {
	t.Helper()
	images.once.Do(func() {
		images.imgs, images.missing, images.err = buildImages("")
	})
	return imagesOrFail(t, images.imgs, images.missing, images.err)
}

// BuildImagesTo runs images/build.sh with dir as its output directory
// rather than images/out, every time: from scratch, that takes a minute.
// A missing input fails or skips the test as in BuildImages.
func BuildImagesTo(t T, dir string) Images {
	t.Helper()
	imgs, missing, err := buildImages(dir)
	return imagesOrFail(t, imgs, missing, err)
}

func imagesOrFail(t T, imgs Images, missing bool, err error) Images {
	t.Helper()
	switch {
	case missing:
		Unavailable(t, err.Error())
	case err != nil:
		t.Fatal(err)
	}
	return imgs
}

// buildImages builds into dir, images/out if "".
func buildImages(dir string) (imgs Images, missing bool, err error) {
	root, err := repoRoot()
	if err != nil {
		return imgs, false, err
	}
	if dir == "" {
		dir = filepath.Join(root, "images", "out")
	}
	var out bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "images", "build.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "OUT="+dir)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			return imgs, true, errors.New(msg)
		}
		return imgs, false, fmt.Errorf("lab: images/build.sh: %v\n%s", err, msg)
	}
	return Images{
		Dir:                  dir,
		Kernel:               filepath.Join(dir, "vmlinuz"),
		TestInitrd:           filepath.Join(dir, "test-initrd.img"),
		UndionlyKPXE:         filepath.Join(dir, "undionly.kpxe"),
		IPXEEFI:              filepath.Join(dir, "ipxe.efi"),
		SnponlyEFI:           filepath.Join(dir, "snponly.efi"),
		InstallerInitrd:      filepath.Join(dir, "installer.initrd"),
		TestOSGz:             filepath.Join(dir, "testos.raw.gz"),
		TestOSZst:            filepath.Join(dir, "testos.raw.zst"),
		TestOSXz:             filepath.Join(dir, "testos.raw.xz"),
		TestOSEFIGz:          filepath.Join(dir, "testos-efi.raw.gz"),
		ShimEFI:              filepath.Join(dir, "shimx64.efi"),
		GRUBNetEFI:           filepath.Join(dir, "grubx64.efi"),
		GRUBNetARM64:         filepath.Join(dir, "grubaa64.efi"),
		KernelARM64:          filepath.Join(dir, "vmlinuz-arm64"),
		InstallerInitrdARM64: filepath.Join(dir, "installer-arm64.initrd"),
		TestOSARM64Gz:        filepath.Join(dir, "testos-arm64.raw.gz"),
	}, false, nil
}

// repoRoot is the directory of the go.mod above the working directory
// (go test runs in the package's directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("lab: no go.mod above the working directory")
		}
		dir = parent
	}
}
