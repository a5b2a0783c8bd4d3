package httpboot

import (
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// What iPXE reads as one plain word. iPXE splits a line at whitespace,
// expands ${...} in each word, treats a "||", "&&" or ";" word as an
// operator and a word starting with '#' as the start of a comment; newer
// versions also honour quotes and backslashes. None of these may come from
// data.
var (
	// nameRE is the store's rule for object keys (machine and image ids).
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	// fileRE is an artifact path under ArtifactDir.
	fileRE = regexp.MustCompile(`^[A-Za-z0-9._+/-]+$`)
	// urlRE is an absolute URL: RFC 3986 characters without '$' and '\''.
	urlRE = regexp.MustCompile(`^https?://[A-Za-z0-9\-._~:/?#\[\]@!&()*+,;=%]+$`)
	// argRE is one kernel argument.
	argRE = regexp.MustCompile(`^[A-Za-z0-9\-._~:/?#\[\]@!&()*+,;=%<>^{}|]+$`)
	// macRE is a MAC in canonical form.
	macRE = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	// credentialRE is an agent credential (see package provision): a
	// workflow id, or a discovery credential's fields, after the
	// signature.
	credentialRE = regexp.MustCompile(`^[wd][A-Za-z0-9_-]{43}\.[a-z0-9._-]{1,96}$`)
	// tftpPathRE is a file GRUB fetches over TFTP from the appliance.
	tftpPathRE = regexp.MustCompile(`^/[A-Za-z0-9._+/:-]+$`)
	// textRE is a message of our own.
	textRE = regexp.MustCompile(`^[A-Za-z0-9 ,.:_-]*$`)
)

// setInstaller fills in img as the installer to boot, or returns the
// problem that makes it unusable.
func (d *scriptData) setInstaller(img *store.Image) (problem string) {
	bad := func(what string) string {
		return fmt.Sprintf("installer image %s has %s iPXE cannot take safely", safeName(img.Name), what)
	}
	var ok bool
	d.Image = img.Name
	if d.Kernel, _, ok = artifactURL(d.Base, img.Kernel); !ok {
		return bad("a kernel location")
	}
	if d.Initrd, d.InitrdName, ok = artifactURL(d.Base, img.Initrd); !ok {
		return bad("an initrd location")
	}
	if d.Cmdline, ok = cmdline(img.Cmdline); !ok {
		return bad("a cmdline")
	}
	return ""
}

// artifactURL returns the URL iPXE fetches ref from, and the name iPXE
// gives the image it fetches (the last path element). ref is an
// artifact ("sha256:<hex>"), served at <base>/artifacts/sha256/<hex>;
// an http(s) URL, used as it is; or a path under ArtifactDir, served at
// <base>/artifacts/<ref>.
func artifactURL(base, ref string) (u, name string, ok bool) {
	if u, name, ok := digestRef(base, ref); ok {
		return u, name, true
	}
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		p, err := url.Parse(ref)
		if err != nil || p.Host == "" || !urlRE.MatchString(ref) {
			return "", "", false
		}
		u, name = ref, path.Base(p.Path)
	} else {
		if !fs.ValidPath(ref) || ref == "." || !fileRE.MatchString(ref) {
			return "", "", false
		}
		u, name = base+"/artifacts/"+ref, path.Base(ref)
	}
	if !fileRE.MatchString(name) || name == "." || name == ".." || name == "/" {
		return "", "", false
	}
	return u, name, true
}

// cmdline returns the installer's extra kernel arguments with their spaces
// normalised, or false if one of them is not a plain word to iPXE.
func cmdline(s string) (string, bool) {
	args := strings.Fields(s)
	for _, a := range args {
		if !argRE.MatchString(a) || a == "||" || a == "&&" || a == ";" || a[0] == '#' {
			return "", false
		}
	}
	return strings.Join(args, " "), true
}

// safeName returns an image or machine name for a message, or
// "invalid-name".
func safeName(s string) string {
	if nameRE.MatchString(s) {
		return s
	}
	return "invalid-name"
}

// check is the last guard before rendering: every value that reaches a
// script must be one iPXE reads as plain words. The request parser and
// setInstaller already hold to this; check makes it one rule, in one
// place.
func (d *scriptData) check() error {
	fields := []struct {
		name, v string
		re      *regexp.Regexp
		empty   bool
	}{
		{"variant", d.Variant, nameRE, false},
		{"base", d.Base, urlRE, false},
		{"mac", d.MAC, macRE, false},
		{"machine", d.Machine, nameRE, true},
		{"state", d.State, nameRE, true},
		{"platform", d.Platform, tokenRE, true},
		{"image", d.Image, nameRE, true},
		{"kernel", d.Kernel, urlRE, true},
		{"initrd", d.Initrd, urlRE, true},
		{"initrd name", d.InitrdName, fileRE, true},
		{"problem", d.Problem, textRE, true},
		{"token", d.Token, credentialRE, true},
		{"traceparent", d.Traceparent, traceparentRE, true},
		{"grub kernel", d.GRUBKernel, tftpPathRE, true},
		{"grub initrd", d.GRUBInitrd, tftpPathRE, true},
		{"grub retry", d.GRUBRetry, tftpPathRE, true},
	}
	for _, f := range fields {
		if f.v == "" && f.empty {
			continue
		}
		if !f.re.MatchString(f.v) {
			return fmt.Errorf("%s %q is not safe in a script", f.name, f.v)
		}
	}
	if _, ok := cmdline(d.Cmdline); !ok {
		return fmt.Errorf("cmdline %q is not safe in a script", d.Cmdline)
	}
	if !strings.HasSuffix(d.Retry, "&arch=${buildarch}&platform=${platform}") ||
		!urlRE.MatchString(strings.TrimSuffix(d.Retry, "&arch=${buildarch}&platform=${platform}")) {
		return fmt.Errorf("retry URL %q is not safe in a script", d.Retry)
	}
	return nil
}
