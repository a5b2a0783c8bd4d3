package store

import (
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// applyPutCatalogueImage puts an image of the catalogue and places it:
// written into every matching site's desired state whose object differs
// (a revision each), removed from the sites it was on that no longer
// match. It checks everything first: the artifacts the image names, the
// sites it lists, and that no matching site has its own image of that
// name. It returns the number of sites it is placed on.
func applyPutCatalogueImage(tx *txn, p *putCatalogueImagePayload) (any, error) {
	c := p.Image
	if c == nil {
		return nil, errs.Invalid("image", "is required")
	}
	if err := ValidSiteID("name", c.Name); err != nil {
		return nil, err
	}
	if err := c.Placement.check(); err != nil {
		return nil, err
	}
	if err := checkImageArtifacts(tx.Tx, c.Image); err != nil {
		return nil, err
	}
	for _, id := range c.Placement.Sites {
		if _, err := siteIn(tx.Tx, id); err != nil {
			return nil, err
		}
	}
	old, err := get[CatalogueImage](tx.Bucket(bucketCatalogue), []byte(c.Name))
	if err != nil {
		return nil, err
	}
	if old == nil {
		old = &CatalogueImage{}
	}
	puts, drops, err := planPlacement(tx.Tx, c, old)
	if err != nil {
		return nil, err
	}
	of := revisionOf{p.Time, p.By}
	c.Placed = map[string]uint64{}
	for _, s := range puts {
		// A site it stays on as it is keeps the revision that put it.
		rev := old.Placed[s.ID]
		b := tx.Bucket(bucketDesired).Bucket([]byte(s.ID))
		if string(b.Get(itemKey(KindImage, c.Name))) != string(c.Image) {
			if rev, err = commitChanges(tx, s, of, []syncproto.Change{{Kind: KindImage, Key: c.Name, Object: c.Image}}); err != nil {
				return nil, err
			}
		}
		c.Placed[s.ID] = rev
	}
	for _, s := range drops {
		if _, err := commitChanges(tx, s, of, []syncproto.Change{{Kind: KindImage, Key: c.Name, Deleted: true}}); err != nil {
			return nil, err
		}
	}
	return uint64(len(c.Placed)), put(tx.Bucket(bucketCatalogue), []byte(c.Name), c)
}

// planPlacement returns the sites c goes on and those it leaves (it was
// placed there as old, and no longer matches), in id order; refused if
// a site it newly goes on has its own image of c's name.
func planPlacement(tx *bolt.Tx, c, old *CatalogueImage) (puts, drops []*Site, err error) {
	cur := tx.Bucket(bucketSites).Cursor()
	for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
		s, err := siteIn(tx, string(k))
		if err != nil {
			return nil, nil, err
		}
		_, had := old.Placed[s.ID]
		switch {
		case c.Placement.Matches(s) && !had:
			if err := checkOwnImage(tx, s.ID, c.Name); err != nil {
				return nil, nil, err
			}
			puts = append(puts, s)
		case c.Placement.Matches(s):
			puts = append(puts, s)
		case had:
			drops = append(drops, s)
		}
	}
	return puts, drops, nil
}

// checkOwnImage refuses to place the catalogue's image name on site if
// the site has an image of that name the catalogue did not place.
func checkOwnImage(tx *bolt.Tx, site, name string) error {
	if tx.Bucket(bucketDesired).Bucket([]byte(site)).Get(itemKey(KindImage, name)) == nil {
		return nil
	}
	return errs.Conflict("site %s has its own image %q (put with PUT /v1/sites/%s/images/%s): delete it there, or give the catalogue's image another name",
		site, name, site, name)
}

// applyDeleteCatalogueImage deletes an image of the catalogue and
// removes it from every site it was placed on (a revision each). It
// returns the number of sites it was removed from.
func applyDeleteCatalogueImage(tx *txn, p *deleteCatalogueImagePayload) (any, error) {
	c, err := catalogueIn(tx.Tx, p.Name)
	if err != nil {
		return nil, err
	}
	of := revisionOf{p.Time, p.By}
	for _, id := range slices.Sorted(maps.Keys(c.Placed)) {
		s, err := siteIn(tx.Tx, id)
		if err != nil {
			return nil, err
		}
		if _, err := commitChanges(tx, s, of, []syncproto.Change{{Kind: KindImage, Key: c.Name, Deleted: true}}); err != nil {
			return nil, err
		}
	}
	return uint64(len(c.Placed)), tx.Bucket(bucketCatalogue).Delete([]byte(c.Name))
}

// applySetSiteLabels replaces a site's labels and places or removes the
// catalogue's images that now match it or no longer do, in one revision
// of the site. It returns the site's latest revision.
func applySetSiteLabels(tx *txn, p *setLabelsPayload) (any, error) {
	if err := CheckLabels("labels", p.Labels); err != nil {
		return nil, err
	}
	s, err := siteIn(tx.Tx, p.Site)
	if err != nil {
		return nil, err
	}
	s.Labels = p.Labels
	if err := placeCatalogue(tx, s, revisionOf{p.Time, p.By}); err != nil {
		return nil, err
	}
	siteChanged(tx, s)
	return s.Revision, nil
}

// placeCatalogue evaluates every image of the catalogue for s (its
// labels as they are now): those that match and are not on it are
// placed, those on it that no longer match are removed, all in one
// revision if anything changed. It stores s. It is refused, having
// written nothing, if an image that newly matches has the name of one of
// the site's own images.
func placeCatalogue(tx *txn, s *Site, of revisionOf) error {
	var changes []syncproto.Change
	var touched []*CatalogueImage
	err := eachCatalogued(tx.Tx, func(c *CatalogueImage) error {
		_, had := c.Placed[s.ID]
		want := c.Placement.Matches(s)
		switch {
		case want && !had:
			if err := checkOwnImage(tx.Tx, s.ID, c.Name); err != nil {
				return err
			}
			changes = append(changes, syncproto.Change{Kind: KindImage, Key: c.Name, Object: c.Image})
		case !want && had:
			changes = append(changes, syncproto.Change{Kind: KindImage, Key: c.Name, Deleted: true})
		default:
			return nil
		}
		touched = append(touched, c)
		return nil
	})
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		return put(tx.Bucket(bucketSites), []byte(s.ID), s)
	}
	rev, err := commitChanges(tx, s, of, changes)
	if err != nil {
		return err
	}
	for i, c := range touched {
		if changes[i].Deleted {
			delete(c.Placed, s.ID)
		} else {
			if c.Placed == nil {
				c.Placed = map[string]uint64{}
			}
			c.Placed[s.ID] = rev
		}
		if err := put(tx.Bucket(bucketCatalogue), []byte(c.Name), c); err != nil {
			return err
		}
	}
	return nil
}

// commitChanges writes changes into s's desired state as one revision,
// stores s and returns the revision.
func commitChanges(tx *txn, s *Site, of revisionOf, changes []syncproto.Change) (uint64, error) {
	b := tx.Bucket(bucketDesired).Bucket([]byte(s.ID))
	for _, ch := range changes {
		var err error
		if ch.Deleted {
			err = b.Delete(itemKey(ch.Kind, ch.Key))
		} else {
			err = b.Put(itemKey(ch.Kind, ch.Key), ch.Object)
		}
		if err != nil {
			return 0, err
		}
	}
	rev, err := appendRevision(tx, s, of, false, changes)
	if err != nil {
		return 0, err
	}
	return rev, put(tx.Bucket(bucketSites), []byte(s.ID), s)
}

// checkNotPlaced refuses a change of site's own image key that the
// catalogue placed there: the catalogue's image is changed at
// /v1/images/{name}.
func checkNotPlaced(tx *bolt.Tx, site, key string) error {
	placed, err := placedOn(tx, site, key)
	if err != nil || !placed {
		return err
	}
	return errs.Conflict("image %q of site %s is placed by central's image catalogue: change or delete it with /v1/images/%s", key, site, key)
}
