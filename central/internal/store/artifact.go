package store

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Media types of an artifact: what its bytes are for.
const (
	ArtifactOS     = "os"     // a disk image the installer writes
	ArtifactKernel = "kernel" // an installer's kernel
	ArtifactInitrd = "initrd" // an installer's initrd
	ArtifactFile   = "file"   // anything else (iPXE binaries, firmware): the default
)

// ArtifactTypes lists the media types.
var ArtifactTypes = []string{ArtifactOS, ArtifactKernel, ArtifactInitrd, ArtifactFile}

// Artifact is one entry of central's catalogue: a content-addressed
// artifact (package internal/artifact) central publishes to its sites,
// and the central nodes that hold its bytes. It is immutable but for its
// holders and the bytes sent of it.
type Artifact struct {
	// Digest is the SHA-256 of its bytes, 64 lowercase hex digits.
	Digest artifact.Digest `json:"sha256"`
	Size   int64           `json:"size_bytes"`
	// Name and Description say what it is; neither is a key.
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// Type is one of ArtifactTypes.
	Type   string         `json:"type"`
	Source ArtifactSource `json:"source"`
	// CreatedAt and CreatedBy are when and by whom (a token's name) it
	// was first uploaded or registered.
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// Nodes are the central nodes that hold its bytes, sorted: each is
	// recorded once its copy is whole and verified.
	Nodes []string `json:"nodes"`
	// SentBytes is what central sent of it to each site.
	SentBytes map[string]int64 `json:"sent_bytes,omitempty"`
}

// ArtifactSource is where an artifact came from: an upload (the name of
// the token it came with) or an upstream URL central fetches once.
type ArtifactSource struct {
	Upload string `json:"upload,omitempty"`
	URL    string `json:"url,omitempty"`
}

// Limits of an artifact's descriptive fields.
const (
	maxArtifactName        = 200
	maxArtifactDescription = 1000
	maxArtifactURL         = 4096
)

// CheckArtifactMeta checks what an operator says of an artifact: its
// name, description and media type (empty: ArtifactFile).
func CheckArtifactMeta(name, description, typ string) error {
	if err := checkText("name", name, maxArtifactName); err != nil {
		return err
	}
	if err := checkText("description", description, maxArtifactDescription); err != nil {
		return err
	}
	if typ != "" && !slices.Contains(ArtifactTypes, typ) {
		return errs.Invalid("type", "%q is not one of %s", typ, strings.Join(ArtifactTypes, ", "))
	}
	return nil
}

func checkText(field, v string, limit int) error {
	switch {
	case len(v) > limit:
		return errs.Invalid(field, "is %d bytes, more than the limit of %d", len(v), limit)
	case !utf8.ValidString(v):
		return errs.Invalid(field, "is not valid UTF-8")
	case strings.ContainsFunc(v, unicode.IsControl):
		return errs.Invalid(field, "holds a control character")
	}
	return nil
}

// validate checks a record as it is created.
func (a *Artifact) validate() error {
	if err := checkDigest("sha256", a.Digest); err != nil {
		return err
	}
	if a.Size < 0 {
		return errs.Invalid("size_bytes", "must not be negative")
	}
	if err := CheckArtifactMeta(a.Name, a.Description, a.Type); err != nil {
		return err
	}
	if a.Type == "" {
		return errs.Invalid("type", "is required")
	}
	switch s := a.Source; {
	case (s.Upload == "") == (s.URL == ""):
		return errs.Invalid("source", "must be an upload or a url, one of them")
	case s.URL != "":
		return checkUpstream(s.URL)
	}
	return nil
}

// checkDigest checks that d is a digest as the store keeps them.
func checkDigest(field string, d artifact.Digest) error {
	p, err := artifact.ParseDigest(string(d))
	if err != nil || p != d {
		return errs.Invalid(field, "must be 64 lowercase hexadecimal digits")
	}
	return nil
}

func checkUpstream(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > maxArtifactURL:
		return errs.Invalid("url", "is %d bytes, more than the limit of %d", len(raw), maxArtifactURL)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errs.Invalid("url", "is not an http or https URL")
	}
	return nil
}

// RedactURL is raw as central shows and logs it: without a user's
// password or a query, either of which may hold a credential (a query is
// shown as "?…").
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unreadable URL)"
	}
	q := u.RawQuery != ""
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	if q {
		return u.String() + "?…"
	}
	return u.String()
}

// checkNode checks the id of a central node that holds artifacts.
func checkNode(id string) error { return ValidSiteID("node", id) }

// RecordArtifact records that node holds a.Digest, and returns the
// record. With create, a record central does not have yet is made of a
// (an upload: its metadata, source, CreatedBy; CreatedAt is stamped here
// if zero); without, the record must exist (a node that copied it).
// Either way a's size must be the record's.
func (d *DB) RecordArtifact(node string, a *Artifact, create bool) (*Artifact, error) {
	if a == nil {
		return nil, errs.Invalid("artifact", "is required")
	}
	rec := *a
	if create && rec.CreatedAt.IsZero() {
		rec.CreatedAt = d.now().UTC()
	}
	if create && rec.Type == "" {
		rec.Type = ArtifactFile
	}
	rec.Nodes, rec.SentBytes = nil, nil
	if _, err := d.exec(cmdRecordArtifact, &recordArtifactPayload{Node: node, Artifact: &rec, Create: create}); err != nil {
		return nil, err
	}
	return d.Artifact(rec.Digest)
}

// RegisterArtifact catalogues an artifact no node holds yet, by the
// actor by: a's Source.URL, which central's leader fetches once and
// verifies against a's digest and size. Registering it again as it is
// changes nothing.
func (d *DB) RegisterArtifact(by string, a *Artifact) (*Artifact, error) {
	if a == nil {
		return nil, errs.Invalid("artifact", "is required")
	}
	rec := *a
	rec.CreatedAt, rec.CreatedBy, rec.Nodes, rec.SentBytes = d.now().UTC(), by, nil, nil
	if rec.Type == "" {
		rec.Type = ArtifactFile
	}
	if rec.Size <= 0 {
		return nil, errs.Invalid("size_bytes", "is required: the artifact's size, which central checks")
	}
	if _, err := d.exec(cmdRegisterArtifact, &registerArtifactPayload{Artifact: &rec}); err != nil {
		return nil, err
	}
	return d.Artifact(rec.Digest)
}

// DeleteArtifact deletes an artifact from the catalogue, by the actor
// by: every node then removes its copy. It is refused (errs.ErrConflict,
// naming them) while a site's desired image names it.
func (d *DB) DeleteArtifact(by string, digest artifact.Digest) error {
	_, err := d.exec(cmdForgetArtifact, &forgetArtifactPayload{Digest: digest, Time: d.now().UTC(), By: by})
	return err
}

// ForgetArtifactCopy records that node no longer holds digest (it found
// its copy corrupt, or removed it).
func (d *DB) ForgetArtifactCopy(node string, digest artifact.Digest) error {
	_, err := d.exec(cmdForgetArtifact, &forgetArtifactPayload{Digest: digest, Node: node, Time: d.now().UTC()})
	return err
}

// SentCount is what a central node sent of one artifact to one site.
type SentCount struct {
	Site   string          `json:"site"`
	Digest artifact.Digest `json:"sha256"`
	Bytes  int64           `json:"bytes"`
}

// CountArtifactSent adds bytes sent to sites: to each artifact's
// SentBytes (an artifact deleted since is skipped) and to each site's
// ArtifactSentBytes.
func (d *DB) CountArtifactSent(counts []SentCount) error {
	if len(counts) == 0 {
		return nil
	}
	_, err := d.exec(cmdCountArtifactSent, &countSentPayload{Counts: counts})
	return err
}

// Artifact returns the record of digest.
func (d *DB) Artifact(digest artifact.Digest) (*Artifact, error) {
	var a *Artifact
	err := d.view(func(tx *bolt.Tx) (err error) {
		a, err = artifactIn(tx, digest)
		return err
	})
	return a, err
}

// Artifacts returns the catalogue, in digest order.
func (d *DB) Artifacts() ([]*Artifact, error) {
	out := []*Artifact{}
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketArtifacts)
		return b.ForEach(func(k, _ []byte) error {
			a, err := get[Artifact](b, k)
			if a != nil {
				out = append(out, a)
			}
			return err
		})
	})
	return out, err
}

func artifactIn(tx *bolt.Tx, digest artifact.Digest) (*Artifact, error) {
	a, err := get[Artifact](tx.Bucket(bucketArtifacts), []byte(digest))
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errs.NotFound("artifact", digest.Ref())
	}
	return a, nil
}

// WatchArtifacts returns a channel closed when the catalogue next
// changes.
func (d *DB) WatchArtifacts() <-chan struct{} { return d.watch(watchArtifacts) }

const watchArtifacts = "a/"

// ArtifactUse is a site's desired image that names an artifact, and the
// image's field that does.
type ArtifactUse struct {
	Site  string `json:"site"`
	Image string `json:"image"`
	Field string `json:"field"`
}

// ArtifactUses returns, for each digest the sites' desired images name,
// the images that do, in site and image order.
func (d *DB) ArtifactUses() (map[artifact.Digest][]ArtifactUse, error) {
	out := map[artifact.Digest][]ArtifactUse{}
	err := d.view(func(tx *bolt.Tx) error {
		return eachImageRef(tx, func(u ArtifactUse, digest artifact.Digest) bool {
			out[digest] = append(out[digest], u)
			return true
		})
	})
	return out, err
}

// SiteUses reports whether one of site's desired images names digest:
// what the site may pull from central.
func (d *DB) SiteUses(site string, digest artifact.Digest) (bool, error) {
	found := false
	err := d.view(func(tx *bolt.Tx) error {
		if _, err := siteIn(tx, site); err != nil {
			return err
		}
		return siteImageRefs(tx, site, func(_ ArtifactUse, d artifact.Digest) bool {
			found = d == digest
			return !found
		})
	})
	return found, err
}

// imageRef is one artifact an image names, and the field it is in.
type imageRef struct {
	field  string
	digest artifact.Digest
}

// imageRefs are the artifacts a desired image needs from central: an OS
// image's sha256 when it is the image's only source (no url, no file),
// an installer's kernel and initrd written "sha256:<hex>". An object
// that is not an image of this shape names none.
func imageRefs(obj json.RawMessage) []imageRef {
	var img syncproto.Image
	if json.Unmarshal(obj, &img) != nil {
		return nil
	}
	var out []imageRef
	if img.Type == syncproto.ImageInstaller {
		for _, f := range []struct{ field, v string }{{"kernel", img.Kernel}, {"initrd", img.Initrd}} {
			if artifact.IsRef(f.v) {
				d, _ := artifact.ParseDigest(f.v)
				out = append(out, imageRef{f.field, d})
			}
		}
		return out
	}
	if img.SHA256 != "" && img.URL == "" && img.File == "" {
		if d, err := artifact.ParseDigest(img.SHA256); err == nil {
			out = append(out, imageRef{"sha256", d})
		}
	}
	return out
}

// eachImageRef calls fn with every artifact every site's images name,
// until fn returns false.
func eachImageRef(tx *bolt.Tx, fn func(ArtifactUse, artifact.Digest) bool) error {
	c := tx.Bucket(bucketSites).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		more := true
		err := siteImageRefs(tx, string(k), func(u ArtifactUse, d artifact.Digest) bool {
			more = fn(u, d)
			return more
		})
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// siteImageRefs calls fn with every artifact site's images name, until
// fn returns false.
func siteImageRefs(tx *bolt.Tx, site string, fn func(ArtifactUse, artifact.Digest) bool) error {
	its, err := items(tx, site, KindImage)
	if err != nil {
		return err
	}
	for _, it := range its {
		for _, r := range imageRefs(it.Object) {
			if !fn(ArtifactUse{Site: site, Image: it.Key, Field: r.field}, r.digest) {
				return nil
			}
		}
	}
	return nil
}

// notCatalogued is the refusal of an image that names an artifact
// central does not hold.
func notCatalogued(r imageRef) error {
	return errs.Invalid(r.field, "%s%s… is not an artifact central holds: upload it first (outpost --central artifact push FILE)",
		artifact.Prefix, r.digest.Short())
}

// usesMessage lists uses for a refusal: at most a few, and how many more.
func usesMessage(uses []ArtifactUse) string {
	var parts []string
	for i, u := range uses {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(uses)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("site %s image %s (%s)", u.Site, u.Image, u.Field))
	}
	return strings.Join(parts, ", ")
}
