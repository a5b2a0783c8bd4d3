package store

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
)

// Image kinds.
const (
	ImageOS        = "os"        // a disk image written by image.write
	ImageInstaller = "installer" // a kernel and initrd booted in memory
)

// Image formats an OS image may have.
var imageFormats = []string{"raw", "raw.gz", "raw.zst", "raw.xz", "qcow2"}

// Image is an OS disk image or an installer the site can boot.
type Image struct {
	Meta
	Name string `json:"name"`
	Type string `json:"type"`
	// SHA256 alone names a content-addressed OS image: an artifact the
	// site keeps on every node (package artifacts). URL (an http(s) URL
	// the site pulls into its artifacts) or File (a file under each
	// node's artifact directory, placed by hand) are the older ways.
	URL    string `json:"url,omitempty"`
	File   string `json:"file,omitempty"`
	Format string `json:"format,omitempty"`
	Size   uint64 `json:"size_bytes,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Kernel and Initrd locate an installer's two parts: an artifact
	// ("sha256:<hex>"), a URL or a file.
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// Arch is the architecture an installer's kernel runs on (a machine's
	// arch; "" is x86_64): a machine boots the installer of the
	// architecture its boot request reveals (InstallerFor).
	Arch string `json:"arch,omitempty"`
}

func (*Image) Kind() string   { return "image" }
func (i *Image) Key() string  { return i.Name }
func (*Image) bucket() []byte { return bucketImages }

// Normalize fills defaults.
func (i *Image) Normalize() {
	if i.Type == "" {
		i.Type = ImageOS
	}
}

// Validate checks the image on its own.
func (i *Image) Validate() error {
	if err := validName("name", i.Name); err != nil {
		return err
	}
	if err := validOneOf("type", i.Type, ImageOS, ImageInstaller); err != nil {
		return err
	}
	if i.Arch != "" {
		if i.Type != ImageInstaller {
			return errs.Invalid("arch", "is for installer images only")
		}
		if err := validOneOf("arch", i.Arch, architectures...); err != nil {
			return err
		}
	}
	if i.SHA256 != "" {
		if b, err := hex.DecodeString(i.SHA256); err != nil || len(b) != 32 {
			return errs.Invalid("sha256", "must be 64 hexadecimal digits")
		}
	}
	switch i.Type {
	case ImageOS:
		switch {
		case i.URL != "" && i.File != "":
			return errs.Invalid("url", "at most one of url and file may be given")
		case i.URL == "" && i.File == "" && i.SHA256 == "":
			return errs.Invalid("sha256", "is required: an os image is its sha256 (an artifact), or a url or file")
		}
		if err := validLocation("url", i.URL); err != nil {
			return err
		}
		if err := validOneOf("format", i.Format, imageFormats...); err != nil {
			return err
		}
	case ImageInstaller:
		if i.Kernel == "" {
			return errs.Invalid("kernel", "is required for an installer")
		}
		if i.Initrd == "" {
			return errs.Invalid("initrd", "is required for an installer")
		}
		for _, f := range [][2]string{{"kernel", i.Kernel}, {"initrd", i.Initrd}} {
			if _, ok := DigestRef(f[1]); !ok && strings.HasPrefix(strings.ToLower(f[1]), DigestPrefix) {
				return errs.Invalid(f[0], "%q is not an artifact reference: want sha256: and 64 hexadecimal digits", f[1])
			}
		}
	}
	return nil
}

func validLocation(field, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errs.Invalid(field, "%q is not an http or https URL", v)
	}
	return nil
}

// InstallerName is the name of the installer image machines boot when the
// site has more than one.
const InstallerName = "installer"

// Installer returns the x86_64 installer image (InstallerFor).
func (tx *Tx) Installer() (img *Image, problem string, err error) {
	return tx.InstallerFor(ArchX86)
}

// The architectures' names (Machine.Arch, Image.Arch).
const (
	ArchX86   = "x86_64"
	ArchARM64 = "aarch64"
)

// InstallerArch is the architecture an installer image boots on.
func (i *Image) InstallerArch() string {
	if i.Arch == "" {
		return ArchX86
	}
	return i.Arch
}

// InstallerFor returns the installer image machines of arch boot: among
// the installer images of arch, the one named "installer" if there is
// one, else the only one. Settings has no field naming it yet. problem
// says why there is none.
func (tx *Tx) InstallerFor(arch string) (img *Image, problem string, err error) {
	if arch == "" { // a machine not normalized yet
		arch = ArchX86
	}
	all, err := List[Image](tx)
	if err != nil {
		return nil, "", fmt.Errorf("images: %w", err)
	}
	var found []*Image
	for _, i := range all {
		if i.Type != ImageInstaller || i.InstallerArch() != arch {
			continue
		}
		if i.Name == InstallerName {
			return i, "", nil
		}
		found = append(found, i)
	}
	switch len(found) {
	case 0:
		return nil, "no installer image" + forArch(arch), nil
	case 1:
		return found[0], "", nil
	default:
		return nil, fmt.Sprintf("%d installer images%s and none named installer", len(found), forArch(arch)), nil
	}
}

// forArch names arch in a problem; x86_64, the architecture of most
// sites' only installer, goes without saying.
func forArch(arch string) string {
	if arch == ArchX86 {
		return ""
	}
	return " for " + arch
}

// Artifacts are the digests the image points at: an OS image's sha256
// (whether it has a url, a file or neither), an installer's kernel and
// initrd where they are "sha256:<hex>" references. Size is the OS
// image's declared size (0: unknown).
func (i *Image) Artifacts() []ImageArtifact {
	var out []ImageArtifact
	switch i.Type {
	case ImageOS:
		if i.SHA256 != "" {
			out = append(out, ImageArtifact{SHA256: strings.ToLower(i.SHA256), Size: int64(i.Size), Role: "image"})
		}
	case ImageInstaller:
		for role, ref := range map[string]string{"kernel": i.Kernel, "initrd": i.Initrd} {
			if d, ok := DigestRef(ref); ok {
				out = append(out, ImageArtifact{SHA256: d, Role: role})
			}
		}
		slices.SortFunc(out, func(a, b ImageArtifact) int { return strings.Compare(a.Role, b.Role) })
	}
	return out
}

// ImageArtifact is one artifact an image points at.
type ImageArtifact struct {
	SHA256 string
	Size   int64
	// Role is what the artifact is to the image: image, kernel or initrd.
	Role string
}

// ContentAddressed reports whether the site serves the OS image from its
// artifacts (by digest): it has a sha256 and no file under the nodes'
// artifact directory (a url image is pulled into the artifacts too).
func (i *Image) ContentAddressed() bool {
	return i.Type == ImageOS && i.SHA256 != "" && i.File == ""
}
