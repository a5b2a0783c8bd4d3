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
	"testing"
)

// Images are the boot artifacts images/build.sh makes, by absolute path.
// Each has a sidecar "<path>.sha256" holding its hex digest.
type Images struct {
	Dir          string // images/out
	Kernel       string // vmlinuz: Debian's kernel
	TestInitrd   string // test-initrd.img: prints OUTPOST-BOOT-OK, powers off
	UndionlyKPXE string // undionly.kpxe: iPXE for BIOS PXE
	IPXEEFI      string // ipxe.efi: iPXE for UEFI, with its own NIC drivers
	SnponlyEFI   string // snponly.efi: iPXE for UEFI over the firmware's SNP
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
func BuildImages(t testing.TB) Images {
	t.Helper()
	images.once.Do(func() {
		images.imgs, images.missing, images.err = buildImages()
	})
	switch {
	case images.missing:
		unavailable(t, images.err.Error())
	case images.err != nil:
		t.Fatal(images.err)
	}
	return images.imgs
}

func buildImages() (imgs Images, missing bool, err error) {
	root, err := repoRoot()
	if err != nil {
		return imgs, false, err
	}
	var out bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "images", "build.sh"))
	cmd.Dir = root
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
	dir := filepath.Join(root, "images", "out")
	return Images{
		Dir:          dir,
		Kernel:       filepath.Join(dir, "vmlinuz"),
		TestInitrd:   filepath.Join(dir, "test-initrd.img"),
		UndionlyKPXE: filepath.Join(dir, "undionly.kpxe"),
		IPXEEFI:      filepath.Join(dir, "ipxe.efi"),
		SnponlyEFI:   filepath.Join(dir, "snponly.efi"),
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
