package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"

	cclient "github.com/outposthq/outpost/central/client"
)

// Central's image catalogue and site labels. A catalogue image is a name
// pointing at a content-addressed image, which central places in the
// desired state of every site it lists or whose labels match; moving the
// name to a new digest moves every site at once.

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parseLabels reads key=value arguments.
func parseLabels(what string, args []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usagef("%s: %q: want key=value", what, a)
		}
		labels[k] = v
	}
	return labels, nil
}

// runImagePut puts an image of central's catalogue. In this command
// --site names a site to place it on (repeatable), not the target.
func runImagePut(e *env, args []string) error {
	fs := e.flagSet("image put")
	var sites, labels listFlag
	fs.Lookup("site").Value = &sites
	fs.Var(&labels, "label", "")
	fields := map[string]*string{}
	for _, f := range []string{"sha256", "format", "type", "kernel", "initrd", "cmdline", "arch", "url", "file"} {
		fields[f] = fs.String(f, "", "")
	}
	c, pos, err := e.artifactArgs(fs, args, 1)
	if err != nil {
		return err
	}
	where, err := parseLabels("image put: --label", labels)
	if err != nil {
		return err
	}
	img := map[string]string{}
	for k, v := range fields {
		if *v != "" {
			img[k] = *v
		}
	}
	img["sha256"] = strings.TrimPrefix(img["sha256"], "sha256:")
	if img["sha256"] == "" {
		delete(img, "sha256")
	}
	obj, err := json.Marshal(img)
	if err != nil {
		return err
	}
	out, err := c.PutImage(e.ctx, pos[0], cclient.PutImageRequest{Image: obj, Placement: cclient.Placement{Sites: sites, SiteLabels: where}})
	if err != nil {
		return err
	}
	return e.showImages([]cclient.CatalogueImage{out})
}

// catalogueHeader and catalogueRow make the table of catalogue images.
var catalogueHeader = []string{"NAME", "SHA256", "SITES", "LABELS", "PLACED", "UPDATED", "BY"}

func catalogueRow(c *cclient.CatalogueImage) []string {
	var placed []string
	for _, p := range c.Placed {
		s := p.Site
		if !p.Acked {
			s += "(pending)"
		}
		placed = append(placed, s)
	}
	return []string{c.Name, short(c.SHA256, 12), strings.Join(c.Sites, ","), labelsCell(c.SiteLabels),
		strings.Join(placed, ","), timeCell(c.UpdatedAt), c.UpdatedBy}
}

// labelsCell shows labels as k=v,k=v in key order.
func labelsCell(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

func (e *env) showImages(list []cclient.CatalogueImage) error {
	if !e.opts.tabular() {
		if len(list) == 1 && e.cmd != "image list" {
			return e.printValue(list[0])
		}
		if list == nil {
			list = []cclient.CatalogueImage{}
		}
		return e.printValue(list)
	}
	rows := make([][]string, len(list))
	for i := range list {
		rows[i] = catalogueRow(&list[i])
	}
	return writeTable(e.stdout, catalogueHeader, rows)
}

// runImageList lists central's catalogue of images.
func runImageList(e *env, args []string) error {
	c, _, err := e.artifactArgs(e.flagSet("image list"), args, 0)
	if err != nil {
		return err
	}
	list, err := c.Images(e.ctx)
	if err != nil {
		return err
	}
	return e.showImages(list)
}

// runImageGet shows one image of the catalogue.
func runImageGet(e *env, args []string) error {
	c, pos, err := e.artifactArgs(e.flagSet("image get"), args, 1)
	if err != nil {
		return err
	}
	img, err := c.Image(e.ctx, pos[0])
	if err != nil {
		return err
	}
	return e.showImages([]cclient.CatalogueImage{img})
}

// runImageDelete deletes an image of the catalogue, and with it the
// image from every site it was placed on.
func runImageDelete(e *env, args []string) error {
	c, pos, err := e.artifactArgs(e.flagSet("image delete"), args, 1)
	if err != nil {
		return err
	}
	if err := c.DeleteImage(e.ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "image %s deleted\n", pos[0])
	return nil
}

// runSiteLabels replaces a site's labels with the key=value arguments
// (none: removes them all); central places and removes the catalogue's
// images to match.
func runSiteLabels(e *env, args []string) error {
	c, pos, err := e.centralArgs(e.flagSet("site labels"), args)
	if err != nil {
		return err
	}
	labels, err := parseLabels("site labels", pos[1:])
	if err != nil {
		return err
	}
	s, err := c.SetSiteLabels(e.ctx, pos[0], labels)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(s)
	}
	fmt.Fprintf(e.stdout, "site %s labels %s (revision %d)\n", s.ID, labelsCell(s.Labels), s.Sync.LatestRevision)
	return nil
}

// centralArgs parses a central command's arguments (a site, then any
// number) with fs and returns central's client and them.
func (e *env) centralArgs(fs *flag.FlagSet, args []string) (*cclient.Client, []string, error) {
	pos, err := e.parse(fs, args, 1, -1)
	if err != nil {
		return nil, nil, err
	}
	c, err := e.artifactClient()
	return c, pos, err
}
