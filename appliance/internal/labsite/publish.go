package labsite

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/syncproto"
)

// Artifact is one file of `make images` published at central.
type Artifact struct {
	Name   string // the name it has in central's catalogue
	File   string // where it was read from
	SHA256 string
	Size   int64
}

// Published is what PublishImages put at central: the artifacts, and the
// site's images that name them.
type Published struct {
	Artifacts []Artifact
	Images    []*syncproto.Image
}

// PublishImages uploads the installer's kernel and initrd and the test OS
// image of imgs (`make images`' output) to central, each with the digest
// of its .sha256 sidecar for central to verify, and puts at central, for
// site, the images InstallerName and TestOSName that point at them by
// digest: what Provisioning's file images are, as content-addressed
// artifacts the site pulls from central. The site still needs Network.
func PublishImages(t lab.T, cen *Central, site string, imgs lab.Images) Published {
	t.Helper()
	c := cclient.New(cen.URL, cen.Token, cen.client)
	var p Published
	for _, f := range []struct{ file, name, typ string }{
		{imgs.Kernel, "installer-kernel", "kernel"},
		{imgs.InstallerInitrd, "installer-initrd", "initrd"},
		{imgs.TestOSGz, TestOSName, "os"},
	} {
		a := Artifact{Name: f.name, File: f.file, SHA256: sidecar(t, f.file)}
		r, err := os.Open(f.file)
		if err != nil {
			t.Fatalf("labsite: publish %s: %v", f.file, err)
		}
		fi, err := r.Stat()
		if err == nil {
			a.Size = fi.Size()
			_, err = c.PushArtifact(t.Context(), r, a.Size, cclient.PushOptions{SHA256: a.SHA256, Name: f.name, Type: f.typ})
		}
		r.Close()
		if err != nil {
			t.Fatalf("labsite: publish %s at central: %v", f.file, err)
		}
		p.Artifacts = append(p.Artifacts, a)
	}
	kernel, initrd, testOS := p.Artifacts[0], p.Artifacts[1], p.Artifacts[2]
	p.Images = []*syncproto.Image{
		{Name: InstallerName, Type: syncproto.ImageInstaller, Cmdline: installerCmdline,
			Kernel: store.DigestPrefix + kernel.SHA256, Initrd: store.DigestPrefix + initrd.SHA256},
		{Name: TestOSName, Type: syncproto.ImageOS, SHA256: testOS.SHA256, Format: "raw.gz", Size: uint64(testOS.Size)},
	}
	for _, img := range p.Images {
		if err := cen.Do("PUT", "/v1/sites/"+site+"/images/"+img.Name, img, nil); err != nil {
			t.Fatalf("labsite: put image %s at central: %v", img.Name, err)
		}
	}
	return p
}

// sidecar reads the digest in file's .sha256 sidecar, as images/build.sh
// writes it.
func sidecar(t lab.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file + ".sha256")
	if err != nil {
		t.Fatalf("labsite: the sha256 of %s: %v", filepath.Base(file), err)
	}
	sum, _, _ := strings.Cut(strings.TrimSpace(string(raw)), " ")
	if !store.ValidDigest(sum) {
		t.Fatalf("labsite: %s.sha256 holds no sha256: %q", filepath.Base(file), fmt.Sprintf("%.80s", raw))
	}
	return sum
}
