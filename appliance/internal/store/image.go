package store

import (
	"encoding/hex"
	"net/url"

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
