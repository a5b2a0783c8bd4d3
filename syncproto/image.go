package syncproto

import (
	"encoding/hex"
	"net/url"
)

// Image types.
const (
	// ImageOS is a disk image the installer writes (the default).
	ImageOS = "os"
	// ImageInstaller is a kernel and an initrd booted in memory.
	ImageInstaller = "installer"
)

// ImageFormats lists the formats an OS image may have.
var ImageFormats = []string{"raw", "raw.gz", "raw.zst", "raw.xz", "qcow2"}

// Image is an OS disk image or an installer the site can boot.
type Image struct {
	Name string `json:"name"`
	// Type is ImageOS or ImageInstaller; empty means ImageOS.
	Type string `json:"type"`
	// SHA256 alone names a content-addressed OS image: an artifact
	// central holds, which the site pulls from central once and keeps on
	// every node. URL (an http(s) URL the site pulls itself) or File (a
	// file under each node's artifact directory, placed by hand) are the
	// older ways, at most one of them.
	URL    string `json:"url,omitempty"`
	File   string `json:"file,omitempty"`
	Format string `json:"format,omitempty"`
	Size   uint64 `json:"size_bytes,omitempty"`
	// SHA256 is the image's digest, 64 hexadecimal digits.
	SHA256 string `json:"sha256,omitempty"`
	// Kernel and Initrd locate an installer's two parts: an artifact
	// ("sha256:<hex>", as an OS image's SHA256), a URL or a file.
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

func (*Image) Kind() string        { return KindImage }
func (i *Image) Key() string       { return i.Name }
func (i *Image) keyField() *string { return &i.Name }

// Validate checks the image (see Object).
func (i *Image) Validate() error {
	if err := objectName(KindImage, "name", i.Name); err != nil {
		return err
	}
	if err := oneOfOrEmpty(KindImage, "type", i.Type, ImageOS, ImageInstaller); err != nil {
		return err
	}
	if b, err := hex.DecodeString(i.SHA256); i.SHA256 != "" && (err != nil || len(b) != 32) {
		return invalid(KindImage, "sha256", "must be 64 hexadecimal digits")
	}
	if i.Type == ImageInstaller {
		switch {
		case i.Kernel == "":
			return invalid(KindImage, "kernel", "is required for an installer")
		case i.Initrd == "":
			return invalid(KindImage, "initrd", "is required for an installer")
		}
		return nil
	}
	switch {
	case i.URL != "" && i.File != "":
		return invalid(KindImage, "url", "at most one of url and file may be given")
	case i.URL == "" && i.File == "" && i.SHA256 == "":
		return invalid(KindImage, "sha256", "is required: an os image is its sha256 (an artifact), or a url or file")
	case i.URL != "" && !httpURL(i.URL):
		return invalid(KindImage, "url", "%q is not an http or https URL", clip(i.URL))
	}
	return oneOf(KindImage, "format", i.Format, ImageFormats...)
}

// httpURL reports whether v is an absolute http(s) URL.
func httpURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
