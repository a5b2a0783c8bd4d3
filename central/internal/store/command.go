package store

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// Central's commands: every change of the store is one, a type byte and
// a JSON payload (package command), applied by its function in the table
// below, in one bbolt transaction (apply.go).
//
// The list is append-only: a number is never reused or renumbered, since
// old logs and snapshots replay through the same table. 19 and 20 belong
// to the shared core (command.Batch, command.Noop) and 123 is '{', the
// first byte of every entry release b482c18 wrote (legacy_b482c18.go). A
// new command takes the next free number, a payload struct here and an
// apply function in the apply_<entity>.go of what it changes, and a name
// in skew.go's commandNames (a replicated central proposes it only once
// every member says it applies it); one that an older node replaying an
// old log may skip is or-ed with command.IgnoreUnknown.
const (
	// cmdCreateSite creates a site with its credential's hash.
	cmdCreateSite command.Type = 1
	// cmdSeen records when a site connected or disconnected.
	cmdSeen command.Type = 2
	// cmdCreateAdminToken creates an admin token (its hash), as the
	// releases before roles did: replay only (cmdCreateToken replaces it).
	cmdCreateAdminToken command.Type = 3
	// cmdPutDesired puts an object into a site's desired state: a new
	// revision, unless the object is already so.
	cmdPutDesired command.Type = 4
	// cmdDeleteDesired deletes an object of a site's desired state: a new
	// revision.
	cmdDeleteDesired command.Type = 5
	// cmdAdvancePast moves a site's revisions past the one it applied,
	// with a full snapshot (central was restored from a backup).
	cmdAdvancePast command.Type = 6
	// cmdRecordAck records the revision a site acknowledged.
	cmdRecordAck command.Type = 7
	// cmdStoreEvents stores a batch of a site's events, exactly once.
	cmdStoreEvents command.Type = 8
	// cmdResetEvents forgets a site's events.
	cmdResetEvents command.Type = 9
	// cmdPutMember records a node of a replicated central.
	cmdPutMember command.Type = 10
	// cmdDeleteMember forgets a node of a replicated central.
	cmdDeleteMember command.Type = 11
	// cmdCreateToken creates a token with its name, role and expiry.
	cmdCreateToken command.Type = 12
	// cmdDeleteToken deletes a token.
	cmdDeleteToken command.Type = 13
	// cmdSetCAGeneration takes a step of a rotation of central's CA
	// (ca.go).
	cmdSetCAGeneration command.Type = 14
	// cmdRecordArtifact records that a central node holds an artifact,
	// creating its record at the first upload.
	cmdRecordArtifact command.Type = 15
	// cmdRegisterArtifact catalogues an upstream URL central fetches.
	cmdRegisterArtifact command.Type = 16
	// cmdForgetArtifact forgets a node's copy of an artifact, or deletes
	// the artifact from the catalogue.
	cmdForgetArtifact command.Type = 17
	// cmdSetSiteLabels replaces a site's labels, placing and removing
	// the catalogue's images that match them.
	cmdSetSiteLabels command.Type = 18
	// 19 and 20 are the shared core's.
	// cmdCountArtifactSent adds the bytes of artifacts sent to sites.
	cmdCountArtifactSent command.Type = 21
	// cmdPutCatalogueImage puts an image of central's catalogue, placing
	// it on every site that matches and removing it from the others.
	cmdPutCatalogueImage command.Type = 22
	// cmdDeleteCatalogueImage deletes an image of the catalogue and
	// removes it from every site it was placed on.
	cmdDeleteCatalogueImage command.Type = 23
	// cmdSetLink records that a central node holds a site's session, or
	// that it ended.
	cmdSetLink command.Type = 24
	// cmdReportSite records what a site reported of itself (its release,
	// its cluster's health, its console, its newest event).
	cmdReportSite command.Type = 25
	// cmdPlaceOrders places orders on many sites in one apply (one
	// revision per site), with the audit entry of the request.
	cmdPlaceOrders command.Type = 26
	// cmdRecordAudit appends an entry to the audit of changes made
	// through central's API.
	cmdRecordAudit command.Type = 27
	// cmdAddSpans keeps a batch of spans (central's own, or a site's),
	// once each, dropping the oldest beyond the bound.
	cmdAddSpans command.Type = 28
	// cmdAddAnnotation records an incident or a fault against the fleet
	// or a site (annotation.go); a node of an older release skips it, as
	// it draws no chart of them (and a cluster with such a member does
	// not commit it: skew.go).
	cmdAddAnnotation command.Type = 29 | command.IgnoreUnknown
	// cmdLegacyJSON is a command of release b482c18: a JSON object
	// whose first byte, '{', is its type (legacy_b482c18.go).
	cmdLegacyJSON command.Type = '{'
)

// table applies each command. Each function checks before it writes, so
// that a refusal (an *errs.Error, or a site's *syncproto.Error) has
// changed nothing.
var table = command.Table[*txn]{
	cmdCreateSite:           decoded(applyCreateSite),
	cmdSeen:                 decoded(applySeen),
	cmdCreateAdminToken:     decoded(applyCreateAdminToken),
	cmdPutDesired:           decoded(applyPutDesired),
	cmdDeleteDesired:        decoded(applyDeleteDesired),
	cmdAdvancePast:          decoded(applyAdvancePast),
	cmdRecordAck:            decoded(applyRecordAck),
	cmdStoreEvents:          decoded(applyStoreEvents),
	cmdResetEvents:          decoded(applyResetEvents),
	cmdPutMember:            decoded(applyPutMember),
	cmdDeleteMember:         decoded(applyDeleteMember),
	cmdCreateToken:          decoded(applyCreateToken),
	cmdDeleteToken:          decoded(applyDeleteToken),
	cmdSetCAGeneration:      decoded(applySetCAGeneration),
	cmdRecordArtifact:       decoded(applyRecordArtifact),
	cmdRegisterArtifact:     decoded(applyRegisterArtifact),
	cmdForgetArtifact:       decoded(applyForgetArtifact),
	cmdCountArtifactSent:    decoded(applyCountSent),
	cmdSetSiteLabels:        decoded(applySetSiteLabels),
	cmdPutCatalogueImage:    decoded(applyPutCatalogueImage),
	cmdDeleteCatalogueImage: decoded(applyDeleteCatalogueImage),
	cmdPlaceOrders:          decoded(applyPlaceOrders),
	cmdRecordAudit:          decoded(applyRecordAudit),
	cmdSetLink:              decoded(applySetLink),
	cmdReportSite:           decoded(applyReportSite),
	cmdAddSpans:             decoded(applyAddSpans),
	cmdAddAnnotation:        decoded(applyAddAnnotation),
	cmdLegacyJSON:           applyLegacy,
}

// The payloads. Times are the proposer's: apply reads no clock.
type (
	// createSitePayload's Site has CreatedAt set, and its labels; By
	// names who made the revision that places the catalogue's matching
	// images (none in a command of a release before labels).
	createSitePayload struct {
		Site *Site  `json:"site"`
		By   string `json:"by,omitempty"`
	}
	seenPayload struct {
		Site string    `json:"site"`
		Time time.Time `json:"time"`
	}
	createTokenPayload struct {
		Token *Token `json:"token"` // CreatedAt set
	}
	deleteTokenPayload struct {
		ID string `json:"id"`
	}
	// putDesiredPayload's Object is validated and its secrets sealed.
	putDesiredPayload struct {
		Site   string          `json:"site"`
		Kind   string          `json:"kind"`
		Key    string          `json:"key"`
		Object json.RawMessage `json:"object"`
		Time   time.Time       `json:"time"`
		// By is who made the change (Revision.By); none in a command of a
		// release before actors.
		By string `json:"by,omitempty"`
	}
	deleteDesiredPayload struct {
		Site string    `json:"site"`
		Kind string    `json:"kind"`
		Key  string    `json:"key"`
		Time time.Time `json:"time"`
		By   string    `json:"by,omitempty"`
	}
	advancePastPayload struct {
		Site    string    `json:"site"`
		Applied uint64    `json:"applied"` // the site's applied revision
		Time    time.Time `json:"time"`
		By      string    `json:"by,omitempty"`
	}
	// recordAckPayload's Time is when central heard it (none in a
	// command of a release before the fleet model).
	recordAckPayload struct {
		Site     string    `json:"site"`
		Revision uint64    `json:"revision"`
		Time     time.Time `json:"time,omitzero"`
	}
	// setLinkPayload: Node holds the site's session from Since on
	// (Connected), or its session that started at Since ended at Time.
	setLinkPayload struct {
		Site      string    `json:"site"`
		Node      string    `json:"node,omitempty"`
		Connected bool      `json:"connected"`
		Since     time.Time `json:"since"`
		Time      time.Time `json:"time"`
	}
	reportSitePayload struct {
		Site   string            `json:"site"`
		Report *syncproto.Report `json:"report"`
		Time   time.Time         `json:"time"`
	}
	storeEventsPayload struct {
		Site   string            `json:"site"`
		Events *syncproto.Events `json:"events"`
		// LostUpTo is the hello's acked_seq: a gap up to it is lost,
		// not refused (StoreEvents).
		LostUpTo uint64    `json:"lost_up_to"`
		Time     time.Time `json:"time"`
	}
	resetEventsPayload struct {
		Site string `json:"site"`
	}
	putMemberPayload struct {
		Member *Member `json:"member"`
	}
	deleteMemberPayload struct {
		ID string `json:"id"`
	}
	// rotateCAPayload's Generation is the one begin goes to, or finish
	// finishes.
	rotateCAPayload struct {
		Step       string    `json:"step"`
		Generation uint64    `json:"generation"`
		Time       time.Time `json:"time"`
		By         string    `json:"by,omitempty"`
	}
	// recordArtifactPayload's Artifact is the record to create (with
	// Create), or names the digest and size of an existing one.
	recordArtifactPayload struct {
		Node     string    `json:"node"`
		Artifact *Artifact `json:"artifact"`
		Create   bool      `json:"create,omitempty"`
	}
	registerArtifactPayload struct {
		Artifact *Artifact `json:"artifact"` // CreatedAt, CreatedBy set
	}
	// forgetArtifactPayload forgets Node's copy, or with no Node the
	// artifact.
	forgetArtifactPayload struct {
		Digest artifact.Digest `json:"sha256"`
		Node   string          `json:"node,omitempty"`
		Time   time.Time       `json:"time"`
		By     string          `json:"by,omitempty"`
	}
	countSentPayload struct {
		Counts []SentCount `json:"counts"`
	}
	// setLabelsPayload's Labels are checked (CheckLabels); none removes
	// every label.
	setLabelsPayload struct {
		Site   string            `json:"site"`
		Labels map[string]string `json:"labels,omitempty"`
		Time   time.Time         `json:"time"`
		By     string            `json:"by,omitempty"`
	}
	// putCatalogueImagePayload's Image is checked (its object decoded as
	// a syncproto.Image) and has no Placed.
	putCatalogueImagePayload struct {
		Image *CatalogueImage `json:"image"`
		Time  time.Time       `json:"time"`
		By    string          `json:"by,omitempty"`
	}
	// placeOrdersPayload's orders are validated syncproto.Orders; Audit
	// (if any) is appended in the same apply, its Time set.
	placeOrdersPayload struct {
		Orders []OrderToPlace `json:"orders"`
		Time   time.Time      `json:"time"`
		By     string         `json:"by,omitempty"`
		Audit  *AuditEntry    `json:"audit,omitempty"`
	}
	// addSpansPayload's spans are validated (tracing.Span.Validate);
	// Max is the bound of the spans kept, the proposer's, so that every
	// node drops the same ones.
	addSpansPayload struct {
		Spans []tracing.Span `json:"spans"`
		Max   int            `json:"max"`
	}
	addAnnotationPayload struct {
		Annotation *Annotation `json:"annotation"` // checked, Created set, ID not
	}
	recordAuditPayload struct {
		Entry *AuditEntry `json:"entry"` // Time set, Seq not
	}
	deleteCatalogueImagePayload struct {
		Name string    `json:"name"`
		Time time.Time `json:"time"`
		By   string    `json:"by,omitempty"`
	}
)

// txn is the transaction commands are applied in: the bbolt transaction
// and the watchers to wake once it commits.
type txn struct {
	*bolt.Tx
	notify []string
	// fleet are the fleet's records the transaction changed, for the
	// index (apply_fleet.go).
	fleet []fleetChange
}

// wake schedules the watchers of key for after the commit.
func (tx *txn) wake(key string) { tx.notify = append(tx.notify, key) }

// decoded makes an apply function of its payload type P into a table
// entry: the payload is decoded first, and one that does not decode stops
// the node (command.MustDecode).
func decoded[P any](fn func(tx *txn, p *P) (any, error)) command.Func[*txn] {
	return func(tx *txn, payload []byte, index uint64) (any, error) {
		p := new(P)
		command.MustDecode(payload, p, index)
		return fn(tx, p)
	}
}
