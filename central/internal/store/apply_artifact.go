package store

import (
	"encoding/json"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
)

// applyRecordArtifact adds a node to an artifact's holders, creating the
// record first if the payload says so and there is none. It returns the
// number of holders.
func applyRecordArtifact(tx *txn, p *recordArtifactPayload) (any, error) {
	a := p.Artifact
	if a == nil {
		return nil, errs.Invalid("artifact", "is required")
	}
	if err := checkNode(p.Node); err != nil {
		return nil, err
	}
	if err := checkDigest("sha256", a.Digest); err != nil {
		return nil, err
	}
	rec, err := get[Artifact](tx.Bucket(bucketArtifacts), []byte(a.Digest))
	switch {
	case err != nil:
		return nil, err
	case rec == nil && !p.Create:
		return nil, errs.NotFound("artifact", a.Digest.Ref())
	case rec == nil:
		if err := a.validate(); err != nil {
			return nil, err
		}
		rec = a
		rec.Nodes, rec.SentBytes = nil, nil
	case rec.Size != a.Size:
		return nil, errs.Conflict("artifact %s is %d bytes, not %d", a.Digest.Ref(), rec.Size, a.Size)
	}
	if !slices.Contains(rec.Nodes, p.Node) {
		rec.Nodes = append(rec.Nodes, p.Node)
		slices.Sort(rec.Nodes)
	}
	tx.wake(watchArtifacts)
	return uint64(len(rec.Nodes)), put(tx.Bucket(bucketArtifacts), []byte(rec.Digest), rec)
}

// applyRegisterArtifact catalogues an upstream URL no node holds yet; the
// same registration again changes nothing, another of a catalogued
// digest is refused.
func applyRegisterArtifact(tx *txn, p *registerArtifactPayload) (any, error) {
	a := p.Artifact
	if a == nil {
		return nil, errs.Invalid("artifact", "is required")
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	if a.Source.URL == "" || a.Size <= 0 {
		return nil, errs.Invalid("url", "a registered artifact is an upstream url with its size")
	}
	b := tx.Bucket(bucketArtifacts)
	rec, err := get[Artifact](b, []byte(a.Digest))
	switch {
	case err != nil:
		return nil, err
	case rec != nil && rec.Source.URL == a.Source.URL && rec.Size == a.Size:
		return uint64(len(rec.Nodes)), nil
	case rec != nil:
		return nil, errs.Conflict("artifact %s is in central's catalogue already (%s): delete it first to register it again",
			a.Digest.Ref(), describe(rec))
	}
	rec = a
	rec.Nodes, rec.SentBytes = []string{}, nil
	tx.wake(watchArtifacts)
	return uint64(0), put(b, []byte(rec.Digest), rec)
}

// describe names a record in a message: its name and where it came from
// (an upstream URL without its query, which may hold a credential).
func describe(a *Artifact) string {
	from := "uploaded by " + a.Source.Upload
	if a.Source.URL != "" {
		from = "from " + RedactURL(a.Source.URL)
	}
	if a.Name != "" {
		return a.Name + ", " + from
	}
	return from
}

// applyForgetArtifact removes a node from an artifact's holders, or, with
// no node, deletes the record: refused while a site's image names it.
func applyForgetArtifact(tx *txn, p *forgetArtifactPayload) (any, error) {
	b := tx.Bucket(bucketArtifacts)
	rec, err := artifactIn(tx.Tx, p.Digest)
	if err != nil {
		return nil, err
	}
	if p.Node != "" {
		i := slices.Index(rec.Nodes, p.Node)
		if i < 0 {
			return uint64(len(rec.Nodes)), nil
		}
		rec.Nodes = slices.Delete(rec.Nodes, i, i+1)
		tx.wake(watchArtifacts)
		return uint64(len(rec.Nodes)), put(b, []byte(rec.Digest), rec)
	}
	if err := checkCatalogueUses(tx.Tx, p.Digest); err != nil {
		return nil, err
	}
	var uses []ArtifactUse
	err = eachImageRef(tx.Tx, func(u ArtifactUse, d artifact.Digest) bool {
		if d == p.Digest {
			uses = append(uses, u)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(uses) > 0 {
		return nil, errs.Conflict("artifact %s is named by %s: change or delete those images first", p.Digest.Ref(), usesMessage(uses))
	}
	tx.wake(watchArtifacts)
	return uint64(0), b.Delete([]byte(p.Digest))
}

// applyCountSent adds the bytes sent to each site, to the site and to the
// artifact (if it is still catalogued). A count of an unknown site, or
// of no bytes, refuses the batch.
func applyCountSent(tx *txn, p *countSentPayload) (any, error) {
	var total int64
	for _, c := range p.Counts {
		if c.Bytes <= 0 {
			return nil, errs.Invalid("bytes", "must be positive")
		}
		if _, err := siteIn(tx.Tx, c.Site); err != nil {
			return nil, err
		}
		total += c.Bytes
	}
	b := tx.Bucket(bucketArtifacts)
	for _, c := range p.Counts {
		err := updateSite(tx, c.Site, func(s *Site) error {
			s.ArtifactSentBytes += c.Bytes
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := addSent(b, c); err != nil {
			return nil, err
		}
	}
	return uint64(total), nil
}

func addSent(b *bolt.Bucket, c SentCount) error {
	rec, err := get[Artifact](b, []byte(c.Digest))
	if err != nil || rec == nil {
		return err
	}
	if rec.SentBytes == nil {
		rec.SentBytes = map[string]int64{}
	}
	rec.SentBytes[c.Site] += c.Bytes
	return put(b, []byte(rec.Digest), rec)
}

// checkImageArtifacts refuses a desired image that names an artifact
// the catalogue does not hold.
func checkImageArtifacts(tx *bolt.Tx, obj json.RawMessage) error {
	b := tx.Bucket(bucketArtifacts)
	for _, r := range imageRefs(obj) {
		if b.Get([]byte(r.digest)) == nil {
			return notCatalogued(r)
		}
	}
	return nil
}

// checkCatalogueUses refuses to delete an artifact an image of the
// catalogue names, placed or not.
func checkCatalogueUses(tx *bolt.Tx, digest artifact.Digest) error {
	return eachCatalogued(tx, func(c *CatalogueImage) error {
		for _, r := range imageRefs(c.Image) {
			if r.digest == digest {
				return errs.Conflict("artifact %s is named by image %s of central's catalogue (%s): move that name to another digest or delete it first",
					digest.Ref(), c.Name, r.field)
			}
		}
		return nil
	})
}
