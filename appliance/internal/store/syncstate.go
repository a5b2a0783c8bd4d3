package store

import (
	"bytes"
	"strings"
)

// Where the site stands with central: the last desired-state revision it
// applied, the highest event sequence central acknowledged, and the
// objects central manages at the site. They live in the meta bucket, so
// they are replicated, snapshotted and restored with everything else.
// The rules that move them are package site's.

// Keys in bucketMeta for sync.
var (
	keySyncRevision = []byte("sync_applied_revision")
	keySyncAcked    = []byte("sync_acked_seq")
	// Central's objects at the site (machines, images, templates) are
	// named under keySyncManaged + kind + "/" + key, with the revision
	// that put them.
	keySyncManaged = []byte("sync_managed/")
)

// SyncState is where the site stands with central.
type SyncState struct {
	// AppliedRevision is the last desired-state revision applied (0:
	// none).
	AppliedRevision uint64 `json:"applied_revision"`
	// AckedSeq is the highest event sequence central has acknowledged
	// (0: none).
	AckedSeq uint64 `json:"acked_seq"`
	// LastSeq is the newest event's sequence (0: none).
	LastSeq uint64 `json:"last_seq"`
}

// SyncState returns the sync cursors.
func (tx *Tx) SyncState() SyncState {
	meta := tx.tx.Bucket(bucketMeta)
	return SyncState{
		AppliedRevision: readU64(meta.Get(keySyncRevision)),
		AckedSeq:        readU64(meta.Get(keySyncAcked)),
		LastSeq:         tx.LastEventSeq(),
	}
}

// UnsafeSetSyncRevision records rev as the last desired revision applied.
func (tx *Tx) UnsafeSetSyncRevision(rev uint64) error {
	return tx.tx.Bucket(bucketMeta).Put(keySyncRevision, u64(rev))
}

// UnsafeSetSyncAcked records seq as the highest event sequence central
// has acknowledged.
func (tx *Tx) UnsafeSetSyncAcked(seq uint64) error {
	return tx.tx.Bucket(bucketMeta).Put(keySyncAcked, u64(seq))
}

// UnsafeDeleteEventsThrough deletes the oldest events, those with a
// sequence at or below seq, at most limit of them.
func (tx *Tx) UnsafeDeleteEventsThrough(seq uint64, limit int) error {
	b := tx.tx.Bucket(bucketEvents)
	c := b.Cursor()
	for i, k := 0, firstKey(c); i < limit && k != nil && readU64(k) <= seq; i, k = i+1, firstKey(c) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func firstKey(c interface{ First() ([]byte, []byte) }) []byte {
	k, _ := c.First()
	return k
}

func managedKey(kind, key string) []byte {
	return []byte(string(keySyncManaged) + kind + "/" + key)
}

// UnsafeSetManaged records that central manages object kind/key since
// revision rev; rev 0 forgets it.
func (tx *Tx) UnsafeSetManaged(kind, key string, rev uint64) error {
	meta := tx.tx.Bucket(bucketMeta)
	if rev == 0 {
		return meta.Delete(managedKey(kind, key))
	}
	return meta.Put(managedKey(kind, key), u64(rev))
}

// SyncManaged returns the objects central manages at the site, as
// "kind/key", in order.
func (tx *Tx) SyncManaged() []string {
	var out []string
	cur := tx.tx.Bucket(bucketMeta).Cursor()
	for k, _ := cur.Seek(keySyncManaged); k != nil && bytes.HasPrefix(k, keySyncManaged); k, _ = cur.Next() {
		out = append(out, strings.TrimPrefix(string(k), string(keySyncManaged)))
	}
	return out
}
