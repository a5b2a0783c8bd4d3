package orders

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Image names resolve to digests. A site's image is what central gives
// it: an image of the catalogue placed on the site, or the site's own
// desired image, under the name; its digest is what that object says
// now. An order carries the digest (syncproto.Order.ImageSHA256), so that
// the site installs exactly what the preview showed, even if the name
// points elsewhere later.

// imageAt is a name's image at one site.
type imageAt struct {
	found  bool
	digest string // lowercase hex, "" if the image has none
}

// resolver resolves one name at the sites of a request, each once.
type resolver struct {
	db      *store.DB
	name    string
	digests map[string]imageAt
}

// at resolves the name at site.
func (r *resolver) at(site string) (imageAt, error) {
	if at, ok := r.digests[site]; ok {
		return at, nil
	}
	at, err := resolveImage(r.db, site, r.name)
	if err != nil {
		return imageAt{}, err
	}
	r.digests[site] = at
	return at, nil
}

// catalogue is the digest of the catalogue's image of the name, "" if
// the catalogue has none.
func (r *resolver) catalogue() string {
	c, err := r.db.CatalogueImage(r.name)
	if err != nil {
		return ""
	}
	return string(c.Digest())
}

// resolveImage resolves image name at site: whether central gives the
// site an image so named, and its digest.
func resolveImage(db *store.DB, site, name string) (imageAt, error) {
	raw, err := db.Desired(site, store.KindImage, name)
	if errors.Is(err, errs.ErrNotFound) {
		return imageAt{}, nil
	}
	if err != nil {
		return imageAt{}, err
	}
	var img syncproto.Image
	if err := json.Unmarshal(raw, &img); err != nil {
		return imageAt{}, err
	}
	return imageAt{found: true, digest: strings.ToLower(img.SHA256)}, nil
}

// ImageDigest is the digest image name resolves to at site: "" if
// central gives the site no image so named (it may be one of the site's
// own), or one without a digest.
func ImageDigest(db *store.DB, site, name string) (string, error) {
	at, err := resolveImage(db, site, name)
	return at.digest, err
}
