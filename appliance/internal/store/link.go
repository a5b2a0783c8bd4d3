package store

import (
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// Link is the site's link to central as the leader last reported it
// (site's RecordLink), so that every node shows it, not only the leader
// that runs the sync client. It is kept beside the settings, under its
// own key; a store that has none (one of an earlier release, a site
// without central, or one whose leader has not connected or failed to
// yet) reads as unknown: tx.Link returns nil.
type Link struct {
	Meta
	// Node is the node that reported the link: the leader then.
	Node string `json:"node"`
	// Connected is whether central had welcomed the site.
	Connected bool `json:"connected"`
	// Since is when the link came up or went down.
	Since time.Time `json:"since"`
	// LastSync is the last time the leader handled a message from
	// central (a revision, an acknowledgement, a heartbeat), as of its
	// latest report: reported at most once a minute, so up to a minute
	// old while connected. Zero: none since the reporting node led.
	LastSync time.Time `json:"last_sync,omitzero"`
	// LastError is why the link is down (empty while connected): no
	// secret, the credential is never in an error.
	LastError string `json:"last_error,omitempty"`
	// Central is the URL of the central node, without credentials.
	Central string `json:"central"`
}

// linkKey is the link's key in the settings bucket.
const linkKey = "link"

// MaxLinkError bounds a link's LastError.
const MaxLinkError = 1024

func (*Link) Kind() string   { return "link" }
func (*Link) Key() string    { return linkKey }
func (*Link) bucket() []byte { return bucketSettings }

// Validate checks the record.
func (l *Link) Validate() error {
	switch {
	case l.Node == "":
		return errs.Invalid("node", "is required")
	case l.Since.IsZero():
		return errs.Invalid("since", "is required")
	case l.Connected && l.LastError != "":
		return errs.Invalid("last_error", "a connected link has none")
	case !l.Connected && l.LastError == "":
		return errs.Invalid("last_error", "is required: a link that is down says why")
	case len(l.LastError) > MaxLinkError:
		return errs.Invalid("last_error", "is longer than %d bytes", MaxLinkError)
	}
	return nil
}

// Link returns the link to central as last reported, or nil if the
// store records none (unknown).
func (tx *Tx) Link() (*Link, error) {
	l, err := Get[Link](tx, linkKey)
	if isNotFound(err) {
		return nil, nil
	}
	return l, err
}
