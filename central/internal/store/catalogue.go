package store

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// CatalogueImage is an image of central's catalogue: a name that points
// at a content-addressed image (a syncproto.Image), and the sites it is
// placed on. Central writes the image, under its name, into the desired
// state of every site its placement matches, and keeps it there as the
// image and the sites' labels change.
type CatalogueImage struct {
	// Name is the image's name, and its key in each site's desired
	// state: syncproto's object-name rule.
	Name string `json:"name"`
	// Image is the syncproto.Image placed on each site, as the operator
	// wrote it (compacted), with its name set.
	Image json.RawMessage `json:"image"`
	// Placement says which sites should hold it.
	Placement Placement `json:"placement"`
	// Placed are the sites it is in the desired state of now, each with
	// the revision of that site that put it there as it is.
	Placed map[string]uint64 `json:"placed"`
	// UpdatedAt and UpdatedBy are when and by whom (a token's name) it
	// was last put.
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// Placement is where a catalogue image goes: a site matches if Sites
// lists it, or if it has every label of SiteLabels. Empty SiteLabels
// match no site (an image is placed everywhere only by asking for a
// label every site has).
type Placement struct {
	Sites      []string          `json:"sites,omitempty"`
	SiteLabels map[string]string `json:"site_labels,omitempty"`
}

// Matches reports whether p places an image on s.
func (p Placement) Matches(s *Site) bool {
	return slices.Contains(p.Sites, s.ID) || s.HasLabels(p.SiteLabels)
}

// maxPlacementSites bounds the sites a placement lists.
const maxPlacementSites = 1000

// check checks a placement as it is put: its site ids and labels. That
// the listed sites exist is checked in apply.
func (p Placement) check() error {
	if len(p.Sites) > maxPlacementSites {
		return errs.Invalid("sites", "lists %d sites, more than the limit of %d: place by site_labels", len(p.Sites), maxPlacementSites)
	}
	for _, id := range p.Sites {
		if err := ValidSiteID("sites", id); err != nil {
			return err
		}
	}
	return CheckLabels("site_labels", p.SiteLabels)
}

// Digest is the artifact the image is: an OS image's sha256, or "" for
// an image that is not content-addressed (an installer's parts are its
// kernel and initrd).
func (c *CatalogueImage) Digest() artifact.Digest {
	var img syncproto.Image
	if json.Unmarshal(c.Image, &img) != nil {
		return ""
	}
	d, _ := artifact.ParseDigest(img.SHA256)
	return d
}

// PutCatalogueImage puts the image obj (a syncproto.Image, as JSON)
// into the catalogue under name, by the actor by, with its placement,
// and returns the record. In the same change it is written into the
// desired state of every site the placement matches (a revision for each
// site whose object changes) and removed from the sites it was placed on
// that no longer match. It is refused, changing nothing, if the image
// names an artifact central does not hold, if a listed site does not
// exist (errs.ErrNotFound), or if a matching site has its own image of
// that name (errs.ErrConflict, naming the site).
func (d *DB) PutCatalogueImage(by, name string, obj json.RawMessage, where Placement) (*CatalogueImage, error) {
	if err := ValidSiteID("name", name); err != nil {
		return nil, err
	}
	obj, err := validItem(KindImage, name, obj)
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errs.Invalid("image", "is required")
	}
	if _, err := syncproto.DecodeObject(KindImage, name, obj); err != nil {
		var pe *syncproto.Error
		if errors.As(err, &pe) {
			return nil, errs.Invalid("image", "%s", pe.Message)
		}
		return nil, errs.Invalid("image", "%v", err)
	}
	if obj, err = withName(obj, name); err != nil {
		return nil, err
	}
	if err := where.check(); err != nil {
		return nil, err
	}
	where.Sites = slices.Compact(slices.Sorted(slices.Values(where.Sites)))
	if len(where.SiteLabels) == 0 {
		where.SiteLabels = nil
	}
	now := d.now().UTC()
	c := &CatalogueImage{Name: name, Image: obj, Placement: where, UpdatedAt: now, UpdatedBy: by}
	if _, err := d.exec(cmdPutCatalogueImage, &putCatalogueImagePayload{Image: c, Time: now, By: by}); err != nil {
		return nil, err
	}
	return d.CatalogueImage(name)
}

// withName is the image obj with its name set, as each site shows it.
func withName(obj json.RawMessage, name string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, errs.Invalid("image", "is not a JSON object")
	}
	if _, ok := m["name"]; ok {
		return obj, nil
	}
	m["name"], _ = json.Marshal(name)
	return json.Marshal(m)
}

// DeleteCatalogueImage deletes an image of the catalogue, by the actor
// by, and removes it from the desired state of every site it was placed
// on, in the same change.
func (d *DB) DeleteCatalogueImage(by, name string) error {
	_, err := d.exec(cmdDeleteCatalogueImage, &deleteCatalogueImagePayload{Name: name, Time: d.now().UTC(), By: by})
	return err
}

// CatalogueImage returns the catalogue's image name.
func (d *DB) CatalogueImage(name string) (*CatalogueImage, error) {
	var c *CatalogueImage
	err := d.view(func(tx *bolt.Tx) (err error) {
		c, err = catalogueIn(tx, name)
		return err
	})
	return c, err
}

// CatalogueImages returns the catalogue's images in name order.
func (d *DB) CatalogueImages() ([]*CatalogueImage, error) {
	out := []*CatalogueImage{}
	err := d.view(func(tx *bolt.Tx) error {
		return eachCatalogued(tx, func(c *CatalogueImage) error {
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

func catalogueIn(tx *bolt.Tx, name string) (*CatalogueImage, error) {
	c, err := get[CatalogueImage](tx.Bucket(bucketCatalogue), []byte(name))
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errs.NotFound("image", name)
	}
	return c, nil
}

// eachCatalogued calls fn with every image of the catalogue, in name
// order.
func eachCatalogued(tx *bolt.Tx, fn func(c *CatalogueImage) error) error {
	b := tx.Bucket(bucketCatalogue)
	return b.ForEach(func(k, _ []byte) error {
		c, err := get[CatalogueImage](b, k)
		if err != nil {
			return err
		}
		return fn(c)
	})
}

// placedOn reports whether site's image key was placed there by the
// catalogue.
func placedOn(tx *bolt.Tx, site, key string) (bool, error) {
	c, err := get[CatalogueImage](tx.Bucket(bucketCatalogue), []byte(key))
	if err != nil || c == nil {
		return false, err
	}
	_, ok := c.Placed[site]
	return ok, nil
}
