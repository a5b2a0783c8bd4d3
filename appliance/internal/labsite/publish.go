package labsite

import (
	"encoding/json"
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
	var p Published
	for _, f := range []struct{ file, name, typ string }{
		{imgs.Kernel, "installer-kernel", "kernel"},
		{imgs.InstallerInitrd, "installer-initrd", "initrd"},
		{imgs.TestOSGz, TestOSName, "os"},
	} {
		p.Artifacts = append(p.Artifacts, push(t, cen, f.file, f.name, f.typ))
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

// PublishCatalogueImage uploads the OS image file (of format, as
// syncproto.ImageFormats names them) to central with the digest of its
// .sha256 sidecar, and puts it in central's catalogue as name, placed on
// sites: central writes it into their desired state, and they pull its
// bytes from central.
func PublishCatalogueImage(t lab.T, cen *Central, name, file, format string, sites ...string) Artifact {
	t.Helper()
	a := push(t, cen, file, name, syncproto.ImageOS)
	img, err := json.Marshal(syncproto.Image{Name: name, Type: syncproto.ImageOS, Format: format, SHA256: a.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	req := cclient.PutImageRequest{Image: img, Placement: cclient.Placement{Sites: sites}}
	if _, err := cclient.New(cen.URL, cen.Token, cen.client).PutImage(t.Context(), name, req); err != nil {
		t.Fatalf("labsite: put %s in central's catalogue: %v", name, err)
	}
	return a
}

// push uploads file to central as an artifact named name of type typ,
// with the digest of its sidecar for central to verify.
func push(t lab.T, cen *Central, file, name, typ string) Artifact {
	t.Helper()
	a := Artifact{Name: name, File: file, SHA256: sidecar(t, file)}
	r, err := os.Open(file)
	if err != nil {
		t.Fatalf("labsite: publish %s: %v", file, err)
	}
	defer r.Close()
	fi, err := r.Stat()
	if err == nil {
		a.Size = fi.Size()
		c := cclient.New(cen.URL, cen.Token, cen.client)
		_, err = c.PushArtifact(t.Context(), r, a.Size, cclient.PushOptions{SHA256: a.SHA256, Name: name, Type: typ})
	}
	if err != nil {
		t.Fatalf("labsite: publish %s at central: %v", file, err)
	}
	return a
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
