package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/syncproto"
)

// Commands of release b482c18. That release wrote every change into its
// Raft log as a JSON object, legacyCommand: an op name and union fields
// (N meant something else per op). Every such entry starts with '{', 123,
// so the table reads it as type cmdLegacyJSON, and applyLegacy applies
// the typed command it stands for, with that release's semantics: the
// same checks in the same order, the same refusals. Nothing writes this
// format any more; it is here for the logs (and followers) of nodes
// upgraded from that release. It can go once no log holds one: when
// every node has snapshotted past its last legacy entry.

// legacyCommand is release b482c18's store.Command, as it was encoded.
type legacyCommand struct {
	Op      string            `json:"op"`
	Time    time.Time         `json:"time"`
	Site    string            `json:"site,omitempty"`
	Kind    string            `json:"kind,omitempty"`
	Key     string            `json:"key,omitempty"`
	Object  json.RawMessage   `json:"object,omitempty"`
	N       uint64            `json:"n,omitempty"`
	Events  *syncproto.Events `json:"events,omitempty"`
	NewSite *Site             `json:"new_site,omitempty"`
	Token   *Token            `json:"token,omitempty"`
	Member  *Member           `json:"member,omitempty"`
}

// applyLegacy decodes a command of release b482c18 (its '{' is the type
// byte) and applies it.
func applyLegacy(tx *txn, payload []byte, index uint64) (any, error) {
	c := new(legacyCommand)
	command.MustDecode(append([]byte{'{'}, payload...), c, index)
	return c.apply(tx)
}

// apply applies the typed command c stands for. An op this code does
// not know stops the node, as it did that release's.
func (c *legacyCommand) apply(tx *txn) (any, error) {
	switch c.Op {
	case "create_site":
		return applyCreateSite(tx, &createSitePayload{Site: c.NewSite})
	case "seen":
		return applySeen(tx, &seenPayload{Site: c.Site, Time: c.Time})
	case "create_token":
		return applyCreateAdminToken(tx, &createTokenPayload{Token: c.Token})
	case "put_desired":
		return applyPutDesired(tx, &putDesiredPayload{Site: c.Site, Kind: c.Kind, Key: c.Key, Object: c.Object, Time: c.Time})
	case "delete_desired":
		return applyDeleteDesired(tx, &deleteDesiredPayload{Site: c.Site, Kind: c.Kind, Key: c.Key, Time: c.Time})
	case "advance_past":
		return applyAdvancePast(tx, &advancePastPayload{Site: c.Site, Applied: c.N, Time: c.Time})
	case "record_ack":
		return applyRecordAck(tx, &recordAckPayload{Site: c.Site, Revision: c.N})
	case "store_events":
		return applyStoreEvents(tx, &storeEventsPayload{Site: c.Site, Events: c.Events, LostUpTo: c.N, Time: c.Time})
	case "reset_events":
		return applyResetEvents(tx, &resetEventsPayload{Site: c.Site})
	case "put_member":
		return applyPutMember(tx, &putMemberPayload{Member: c.Member})
	case "delete_member":
		return applyDeleteMember(tx, &deleteMemberPayload{ID: c.Key})
	}
	return nil, fmt.Errorf("unknown op %q of release b482c18's encoding", c.Op)
}

// Values sealed by release b482c18 (BMC passwords at rest, and the key it
// handed a joining node) are AES-256-GCM under the same key as today's,
// without the version byte: the 12-byte nonce, then the ciphertext. With
// seal's version byte (1) put in front they are exactly seal's format, so
// openCompat opens them with package seal itself: it tries a value as it
// is, then as a legacy one. A value opens as at most one of the two, since
// GCM authenticates the nonce it is given. They are not sealed again: a
// legacy password stays as it is until its machine's password changes
// (putting the same machine again after the upgrade stores it anew once,
// in today's format, as one new revision).
func openCompat(k *seal.Key, sealed []byte, ad string) ([]byte, error) {
	if pt, err := k.Open(sealed, ad); err == nil {
		return pt, nil
	}
	return k.Open(append([]byte{1}, sealed...), ad)
}
