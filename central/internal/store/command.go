package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Every change of the store is a Command, applied in one bbolt
// transaction by apply. A single central applies it at once; a
// replicated one (package replica) proposes it to its Raft log, and every
// node applies the committed log in order (ApplyLog). So apply is
// deterministic: everything it would otherwise draw from the clock or
// randomness (times, hashes, sealed passwords) is in the command.

// Op names a change. Ops are written to the replicated log: never rename
// or reuse one.
type Op string

// The ops.
const (
	OpCreateSite    Op = "create_site"
	OpSeen          Op = "seen"
	OpCreateToken   Op = "create_token"
	OpPutDesired    Op = "put_desired"
	OpDeleteDesired Op = "delete_desired"
	OpAdvancePast   Op = "advance_past"
	OpRecordAck     Op = "record_ack"
	OpStoreEvents   Op = "store_events"
	OpResetEvents   Op = "reset_events"
	OpPutMember     Op = "put_member"
	OpDeleteMember  Op = "delete_member"
)

// Command is one change of the store. Which fields an op reads is noted
// beside each.
type Command struct {
	Op   Op        `json:"op"`
	Time time.Time `json:"time"`
	// Site is the site changed (all but create_site, create_token and
	// the member ops).
	Site string `json:"site,omitempty"`
	// Kind, Key and Object name a desired object (put_desired,
	// delete_desired); Object is already validated and sealed.
	Kind   string          `json:"kind,omitempty"`
	Key    string          `json:"key,omitempty"`
	Object json.RawMessage `json:"object,omitempty"`
	// N is the revision (advance_past: applied; record_ack: acked) or
	// store_events' lostUpTo.
	N      uint64            `json:"n,omitempty"`
	Events *syncproto.Events `json:"events,omitempty"`
	// NewSite is the site to create (create_site).
	NewSite *Site `json:"new_site,omitempty"`
	// Token is the token record to create (create_token).
	Token *Token `json:"token,omitempty"`
	// Member is the member to record (put_member); Key names the one to
	// delete (delete_member).
	Member *Member `json:"member,omitempty"`
}

// Result is what applying a command returns.
type Result struct {
	// N is the op's number: the revision (put_desired, delete_desired,
	// advance_past), the highest sequence stored (store_events) or the
	// events dropped (reset_events).
	N uint64
	// Err is the domain error that refused the command (an *errs.Error); the
	// store is unchanged.
	Err error
}

// Log is where a replicated store proposes its commands, to be applied
// on every node through ApplyLog (package replica implements it).
type Log interface {
	// Propose commits cmd (an encoded Command) and returns the Result
	// of applying it, or why it could not be committed. It fails on a
	// node that does not lead.
	Propose(cmd []byte) (Result, error)
}

// ErrNotApplied wraps an error from a Log: the change may or may not be
// committed (the leader was lost in the middle), or was not (this node
// does not lead).
var ErrNotApplied = errors.New("store: the change was not confirmed")

// SetLog makes every change from now on go through l. A store without a
// log applies changes at once.
func (d *DB) SetLog(l Log) { d.log.Store(&l) }

// exec applies c, through the log if there is one, and returns its
// result; a domain refusal is returned as the error too.
func (d *DB) exec(c *Command) (Result, error) {
	if c.Time.IsZero() {
		c.Time = d.now().UTC()
	}
	if lp := d.log.Load(); lp != nil {
		raw, err := json.Marshal(c)
		if err != nil {
			return Result{}, fmt.Errorf("store: encode %s: %w", c.Op, err)
		}
		r, err := (*lp).Propose(raw)
		if err != nil {
			return Result{}, fmt.Errorf("%w: %s: %w", ErrNotApplied, c.Op, err)
		}
		return r, r.Err
	}
	var r Result
	var notify []string
	err := d.update(func(tx *bolt.Tx) (err error) {
		r, notify, err = apply(tx, c)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	d.notifyAll(notify)
	return r, r.Err
}

// Entry is one committed entry of a replicated log. Data is an encoded
// Command, or nil for an entry that only advances the index (Raft's own
// no-ops and configuration changes).
type Entry struct {
	Index uint64
	Data  []byte
}

// ApplyLog applies committed entries in order in one transaction that
// also records the last index applied, and returns their results. An
// entry at or below the index already applied is skipped (a replay after
// a restart). An error means the store could not be written, or an entry
// does not decode (it was written by newer code): the node must stop
// rather than fork from the others.
func (d *DB) ApplyLog(entries []Entry) ([]Result, error) {
	results := make([]Result, len(entries))
	var notify []string
	err := d.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		applied := readU64(meta.Get(keyAppliedIndex))
		last := applied
		for i, e := range entries {
			if e.Index <= applied {
				continue
			}
			last = e.Index
			if e.Data == nil {
				continue
			}
			c := new(Command)
			if err := json.Unmarshal(e.Data, c); err != nil {
				return fmt.Errorf("log entry %d does not decode: %w", e.Index, err)
			}
			r, n, err := apply(tx, c)
			if err != nil {
				return fmt.Errorf("log entry %d (%s): %w", e.Index, c.Op, err)
			}
			results[i] = r
			notify = append(notify, n...)
		}
		if last == applied {
			return nil
		}
		return meta.Put(keyAppliedIndex, u64(last))
	})
	if err != nil {
		return nil, err
	}
	d.notifyAll(notify)
	return results, nil
}

// AppliedIndex is the index of the last log entry applied (0 for a store
// that is not replicated).
func (d *DB) AppliedIndex() uint64 {
	var idx uint64
	_ = d.view(func(tx *bolt.Tx) error {
		idx = readU64(tx.Bucket(bucketMeta).Get(keyAppliedIndex))
		return nil
	})
	return idx
}

// apply applies c to tx. A domain refusal is the Result's Err, with
// nothing written (every op checks before it writes); an error is a
// failure of the store itself. It returns the watcher keys to notify once
// the transaction commits.
func apply(tx *bolt.Tx, c *Command) (Result, []string, error) {
	var r Result
	var notify []string
	var err error
	switch c.Op {
	case OpCreateSite:
		err = applyCreateSite(tx, c)
	case OpCreateToken:
		err = applyCreateToken(tx, c)
	case OpPutMember:
		err = applyPutMember(tx, c)
	case OpDeleteMember:
		err = applyDeleteMember(tx, c)
	case OpSeen, OpPutDesired, OpDeleteDesired, OpAdvancePast, OpRecordAck, OpStoreEvents, OpResetEvents:
		err = updateSiteTx(tx, c.Site, func(s *Site) (err error) {
			var changed string
			r.N, changed, err = applySite(tx, s, c)
			if changed != "" {
				notify = append(notify, changed+c.Site)
			}
			return err
		})
	default:
		return Result{}, nil, fmt.Errorf("unknown op %q: written by a newer central", c.Op)
	}
	if e, ok := errs.AsError(err); ok {
		return Result{Err: e}, nil, nil
	}
	if err != nil {
		return Result{}, nil, err
	}
	return r, notify, nil
}

// applySite applies an op on one site's record s (stored after it by the
// caller) and returns its number and the watcher prefix to notify ("d/",
// "e/" or "").
func applySite(tx *bolt.Tx, s *Site, c *Command) (n uint64, notify string, err error) {
	switch c.Op {
	case OpSeen:
		s.LastSeen = c.Time
		return 0, "", nil
	case OpPutDesired:
		b := tx.Bucket(bucketDesired).Bucket([]byte(s.ID))
		old := b.Get(itemKey(c.Kind, c.Key))
		switch {
		case string(old) == string(c.Object):
			return s.Revision, "", nil
		case old != nil && c.Kind == KindOrder:
			return 0, "", errs.Conflict("order %q exists and differs: an order cannot change once placed", c.Key)
		}
		if err := b.Put(itemKey(c.Kind, c.Key), c.Object); err != nil {
			return 0, "", err
		}
		n, err = appendRevision(tx, s, c.Time, false, []syncproto.Change{{Kind: c.Kind, Key: c.Key, Object: c.Object}})
		return n, "d/", err
	case OpDeleteDesired:
		b := tx.Bucket(bucketDesired).Bucket([]byte(s.ID))
		if b.Get(itemKey(c.Kind, c.Key)) == nil {
			return 0, "", errs.NotFound(c.Kind, c.Key)
		}
		if err := b.Delete(itemKey(c.Kind, c.Key)); err != nil {
			return 0, "", err
		}
		n, err = appendRevision(tx, s, c.Time, false, []syncproto.Change{{Kind: c.Kind, Key: c.Key, Deleted: true}})
		return n, "d/", err
	case OpAdvancePast:
		if c.N <= s.Revision {
			return s.Revision, "", nil
		}
		changes, err := snapshot(tx, s.ID)
		if err != nil {
			return 0, "", err
		}
		s.Revision = c.N
		n, err = appendRevision(tx, s, c.Time, true, changes)
		return n, "d/", err
	case OpRecordAck:
		if c.N > s.Revision {
			return 0, "", errs.Invalid("revision", "is %d, past the latest revision %d", c.N, s.Revision)
		}
		s.AckedRevision = max(s.AckedRevision, c.N)
		return s.AckedRevision, "", nil
	case OpStoreEvents:
		return storeEvents(tx, s, c)
	case OpResetEvents:
		b := tx.Bucket(bucketEvents)
		dropped := uint64(b.Bucket([]byte(s.ID)).Stats().KeyN)
		if err := b.DeleteBucket([]byte(s.ID)); err != nil {
			return 0, "", err
		}
		if _, err := b.CreateBucket([]byte(s.ID)); err != nil {
			return 0, "", err
		}
		s.StoredSeq, s.Lost = 0, nil
		return dropped, "", nil
	}
	return 0, "", fmt.Errorf("op %q is not a site op", c.Op)
}

// updateSiteTx runs fn on site id's record and stores it after, unless fn
// fails.
func updateSiteTx(tx *bolt.Tx, id string, fn func(s *Site) error) error {
	s, err := siteIn(tx, id)
	if err != nil {
		return err
	}
	if err := fn(s); err != nil {
		return err
	}
	return put(tx.Bucket(bucketSites), []byte(id), s)
}

// keepRevisions is how many of a site's latest revisions central keeps.
// A site further behind gets a full snapshot instead (NextRevisions), so
// the revisions of a site that never acknowledges stay bounded. Every
// node of a cluster must use the same value.
var keepRevisions uint64 = 1024

// appendRevision records the next revision of s (the caller stores s)
// and forgets the one keepRevisions before it.
func appendRevision(tx *bolt.Tx, s *Site, t time.Time, full bool, changes []syncproto.Change) (uint64, error) {
	s.Revision++
	r := &Revision{Revision: s.Revision, Full: full, Time: t, Changes: changes}
	b := tx.Bucket(bucketRevisions).Bucket([]byte(s.ID))
	if s.Revision > keepRevisions {
		// Revisions are dense but for AdvancePast's jump: delete every
		// one at or below the bound (usually exactly one).
		c := b.Cursor()
		for k, _ := c.First(); k != nil && readU64(k) <= s.Revision-keepRevisions; k, _ = c.First() {
			if err := b.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	return r.Revision, put(b, u64(r.Revision), r)
}

// logHolder lets DB keep its Log in an atomic.Pointer.
type logHolder = atomic.Pointer[Log]
