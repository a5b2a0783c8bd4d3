package store

import (
	"maps"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Site is one appliance cluster that connects to central, with its sync
// cursors.
type Site struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// CredentialHash is the hex SHA-256 of the site's credential. It is
	// never shown.
	CredentialHash string    `json:"credential_hash"`
	CreatedAt      time.Time `json:"created_at"`
	// Revision is the site's latest desired-state revision (0: none).
	Revision uint64 `json:"revision"`
	// AckedRevision is the last revision the site acknowledged.
	AckedRevision uint64 `json:"acked_revision"`
	// StoredSeq is the highest event sequence stored for the site.
	StoredSeq uint64 `json:"stored_seq"`
	// Lost are ranges of the site's events central acknowledged once,
	// then lost (it was restored from a backup) and the site had
	// forgotten.
	Lost []SeqRange `json:"lost,omitempty"`
	// LastSeen is when the site last connected or disconnected.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// ArtifactSentBytes is what central sent the site of artifacts
	// (GET /v1/sites/{site}/artifacts/{sha256}), by every node.
	ArtifactSentBytes int64 `json:"artifact_sent_bytes,omitempty"`
	// Labels describe the site (region=eu, tier=edge): central's image
	// catalogue places its images on the sites whose labels match
	// (catalogue.go). CheckLabels says what a label may be.
	Labels map[string]string `json:"labels,omitempty"`
	// Link is the site's session at central, as the node that holds it
	// recorded (SetLink); nil if none holds it.
	Link *SiteLink `json:"link,omitempty"`
	// Report is what the site last reported of itself (ReportSite).
	Report *SiteReport `json:"report,omitempty"`
}

// SiteLink is a central node's session with a site.
type SiteLink struct {
	Node  string    `json:"node,omitempty"`
	Since time.Time `json:"since"`
}

// SiteReport is a site's report of itself, as central recorded it.
type SiteReport struct {
	syncproto.Report
	Time time.Time `json:"time"`
}

// SeqRange is a range of event sequences, both ends included.
type SeqRange struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// siteIDRE is syncproto's rule for a site id.
var siteIDRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)

// ValidSiteID checks a site id.
func ValidSiteID(field, id string) error {
	if id == "" {
		return errs.Invalid(field, "is required")
	}
	if !siteIDRE.MatchString(id) {
		return errs.Invalid(field, "%q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// Limits of a site's labels.
const (
	maxLabels     = 32
	maxLabelValue = 63
)

// CheckLabels checks a site's labels, or the labels an image's placement
// asks for: at most 32, each key 1-63 lowercase letters, digits, '.',
// '_' or '-' starting with a letter or digit (syncproto's object names),
// each value the same or empty. field names the map in an error
// ("labels", "site_labels").
func CheckLabels(field string, labels map[string]string) error {
	if len(labels) > maxLabels {
		return errs.Invalid(field, "has %d labels, more than the limit of %d", len(labels), maxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if !siteIDRE.MatchString(k) {
			return errs.Invalid(field, "key %q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", k)
		}
		if v := labels[k]; v != "" && (len(v) > maxLabelValue || !siteIDRE.MatchString(v)) {
			return errs.Invalid(field+"."+k, "value %q must be empty or 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", v)
		}
	}
	return nil
}

// CreateSite stores a new site whose credential hashes to credentialHash.
func (d *DB) CreateSite(id, name, credentialHash string) (*Site, error) {
	return d.CreateSiteBy(access.ByCentral, id, name, credentialHash, nil)
}

// CreateSiteBy is CreateSite by the actor by, with labels (CheckLabels):
// the catalogue's images whose placement matches them are placed in the
// new site's desired state in the same change.
func (d *DB) CreateSiteBy(by, id, name, credentialHash string, labels map[string]string) (*Site, error) {
	if err := ValidSiteID("id", id); err != nil {
		return nil, err
	}
	if len(name) > 200 || !utf8.ValidString(name) {
		return nil, errs.Invalid("name", "must be at most 200 bytes of UTF-8")
	}
	if err := CheckLabels("labels", labels); err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		labels = nil
	}
	s := &Site{ID: id, Name: name, CredentialHash: credentialHash, CreatedAt: d.now().UTC(), Labels: labels}
	if _, err := d.exec(cmdCreateSite, &createSitePayload{Site: s, By: by}); err != nil {
		return nil, err
	}
	return d.Site(id)
}

// SetSiteLabels replaces site's labels, by the actor by, and returns the
// site: in the same change every image of the catalogue is placed on the
// site if it now matches, and removed if it no longer does (a revision
// of the site's desired state, if anything changed). It is refused
// (errs.ErrConflict, naming the image) if a newly matching image's name
// is the site's own image's.
func (d *DB) SetSiteLabels(by, site string, labels map[string]string) (*Site, error) {
	if err := CheckLabels("labels", labels); err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		labels = nil
	}
	if _, err := d.exec(cmdSetSiteLabels, &setLabelsPayload{Site: site, Labels: labels, Time: d.now().UTC(), By: by}); err != nil {
		return nil, err
	}
	return d.Site(site)
}

// HasLabels reports whether s has every label of want (none: false).
func (s *Site) HasLabels(want map[string]string) bool {
	if len(want) == 0 {
		return false
	}
	for k, v := range want {
		if got, ok := s.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Site returns the site with id.
func (d *DB) Site(id string) (*Site, error) {
	var s *Site
	err := d.view(func(tx *bolt.Tx) (err error) {
		s, err = siteIn(tx, id)
		return err
	})
	return s, err
}

// Sites returns every site in id order.
func (d *DB) Sites() ([]*Site, error) {
	out := []*Site{}
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSites).ForEach(func(k, _ []byte) error {
			s, err := siteIn(tx, string(k))
			if err == nil {
				out = append(out, s)
			}
			return err
		})
	})
	return out, err
}

// Authenticate returns the site with id if credential is its
// credential, else nil: the same answer for an unknown site and a wrong
// credential, after the same work.
func (d *DB) Authenticate(id, credential string) *Site {
	s, err := d.Site(id)
	hash := ""
	if err == nil {
		hash = s.CredentialHash
	}
	if !secretMatches(hash, credential) || err != nil {
		return nil
	}
	return s
}

// Seen records that site connected or disconnected at t.
func (d *DB) Seen(site string, t time.Time) error {
	_, err := d.exec(cmdSeen, &seenPayload{Site: site, Time: t.UTC()})
	return err
}

func siteIn(tx *bolt.Tx, id string) (*Site, error) {
	s, err := get[Site](tx.Bucket(bucketSites), []byte(id))
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errs.NotFound("site", id)
	}
	return s, nil
}
