package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/errs"
	bolt "go.etcd.io/bbolt"
)

// Meta is carried by every stored object.
type Meta struct {
	// Version is the Raft index of the command that last changed the
	// object. It is the optimistic-concurrency token and the sync cursor.
	Version   uint64    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ObjectMeta returns the object's Meta, to read or set whatever the
// object's type.
func (m *Meta) ObjectMeta() *Meta { return m }

// Object is a value kept in its own bucket under a string key.
type Object interface {
	// Kind is the object's name in errors and the API ("machine").
	Kind() string
	// Key is the object's unique key within its kind.
	Key() string
	// Validate checks the object on its own, without the rest of the store.
	Validate() error
	// ObjectMeta is the object's version and times.
	ObjectMeta() *Meta

	bucket() []byte
}

// objectPtr is the constraint of the generic accessors: a pointer to T
// that is an Object.
type objectPtr[T any] interface {
	*T
	Object
}

// Tx is a transaction on the store.
type Tx struct {
	tx *bolt.Tx
}

// AppliedIndex is the Raft index of the last command the store applied.
func (tx *Tx) AppliedIndex() uint64 {
	return readU64(tx.tx.Bucket(bucketMeta).Get(keyAppliedIndex))
}

// UnsafeSetAppliedIndex records idx as applied. The state machine calls it
// in the same transaction as the command's changes.
func (tx *Tx) UnsafeSetAppliedIndex(idx uint64) error {
	return tx.tx.Bucket(bucketMeta).Put(keyAppliedIndex, u64(idx))
}

// Get returns the object of type T with key, or an error matching
// errs.ErrNotFound.
func Get[T any, P objectPtr[T]](tx *Tx, key string) (*T, error) {
	o, err := Find[T, P](tx, key)
	if o == nil && err == nil {
		var zero P = new(T)
		return nil, errs.NotFound(zero.Kind(), key)
	}
	return o, err
}

// Find is Get for callers to whom a missing object is no error (a put
// looking at what it replaces): nil and no error when there is none,
// without the cost of building the not-found error.
func Find[T any, P objectPtr[T]](tx *Tx, key string) (*T, error) {
	var zero P = new(T)
	raw := tx.tx.Bucket(zero.bucket()).Get([]byte(key))
	if raw == nil {
		return nil, nil
	}
	return decode[T](zero.bucket(), []byte(key), raw)
}

// List returns every object of type T in key order.
func List[T any, P objectPtr[T]](tx *Tx) ([]*T, error) {
	var zero P = new(T)
	var out []*T
	err := tx.tx.Bucket(zero.bucket()).ForEach(func(k, v []byte) error {
		o, err := decode[T](zero.bucket(), k, v)
		if err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

// Count returns how many objects of type T there are.
func Count[T any, P objectPtr[T]](tx *Tx) int {
	var zero P = new(T)
	return tx.tx.Bucket(zero.bucket()).Stats().KeyN
}

// Write describes one put: the object, the version the writer last saw
// (0 for "any"), and the Raft index, time and actor of the command.
type Write struct {
	Expect uint64
	Index  uint64
	Time   time.Time
	// By is who made the change (Event.By), for the events it records.
	By string
}

// unsafePut stores o after checking its expected version, stamping its Meta.
// It returns the previous value's raw bytes (nil if new).
func (tx *Tx) unsafePut(o Object, w Write) (prev []byte, err error) {
	b := tx.tx.Bucket(o.bucket())
	key := []byte(o.Key())
	prev = b.Get(key)
	m := o.ObjectMeta()
	if prev != nil {
		var old Meta
		if err := json.Unmarshal(prev, &old); err != nil {
			return nil, fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, o.bucket(), key, err)
		}
		if w.Expect != 0 && old.Version != w.Expect {
			return nil, errs.Conflict("%s %q is at version %d, not %d", o.Kind(), o.Key(), old.Version, w.Expect)
		}
		m.CreatedAt = old.CreatedAt
	} else {
		if w.Expect != 0 {
			return nil, errs.Conflict("%s %q does not exist (expected version %d)", o.Kind(), o.Key(), w.Expect)
		}
		m.CreatedAt = w.Time
	}
	m.Version = w.Index
	m.UpdatedAt = w.Time
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("store: encode %s %q: %w", o.Kind(), o.Key(), err)
	}
	return prev, b.Put(key, raw)
}

// unsafeDelete removes the object of o's kind with key after checking the
// expected version. It returns the removed value's raw bytes.
func (tx *Tx) unsafeDelete(o Object, key string, expect uint64) ([]byte, error) {
	b := tx.tx.Bucket(o.bucket())
	prev := b.Get([]byte(key))
	if prev == nil {
		return nil, errs.NotFound(o.Kind(), key)
	}
	if expect != 0 {
		var old Meta
		if err := json.Unmarshal(prev, &old); err != nil {
			return nil, fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, o.bucket(), key, err)
		}
		if old.Version != expect {
			return nil, errs.Conflict("%s %q is at version %d, not %d", o.Kind(), key, old.Version, expect)
		}
	}
	return prev, b.Delete([]byte(key))
}

// UnsafePut stores o at w's index and time, after checking its expected
// version, and keeps the indexes of its kind: machines (by MAC and
// address), leases (by MAC), workflows and jobs (the active ones), orders
// (the waiting ones), the IPAM generation for subnets and the artifact
// generation for images and artifact records. The rules about what may be stored are
// package site's.
func (tx *Tx) UnsafePut(o Object, w Write) error {
	switch o := o.(type) {
	case *Machine:
		return tx.UnsafePutMachine(o, w)
	case *Lease:
		cur, err := Get[Lease](tx, o.IP)
		if err != nil && !isNotFound(err) {
			return err
		}
		return tx.UnsafePutLease(o, cur, w)
	case *Workflow:
		return tx.UnsafePutWorkflow(o, w)
	case *Job:
		return tx.UnsafePutJob(o, w)
	case *Subnet:
		if _, err := tx.unsafePut(o, w); err != nil {
			return err
		}
		return tx.bumpIPAMGen()
	case *Order:
		if _, err := tx.unsafePut(o, w); err != nil {
			return err
		}
		return tx.indexWaiting(o, w.Index)
	case *Image, *Artifact:
		if _, err := tx.unsafePut(o, w); err != nil {
			return err
		}
		return tx.bumpArtifactGen()
	}
	_, err := tx.unsafePut(o, w)
	return err
}

// UnsafeDelete removes the object of kind's type with key, after checking
// its expected version (0: any), with its index entries.
func (tx *Tx) UnsafeDelete(kind Object, key string, expect uint64) error {
	switch kind.(type) {
	case *Machine:
		return tx.UnsafeDeleteMachine(key, expect)
	case *Lease:
		return tx.UnsafeDeleteLease(key, expect)
	case *Workflow:
		return tx.unsafeDeleteWorkflow(key, expect)
	case *Job:
		if _, err := tx.unsafeDelete(kind, key, expect); err != nil {
			return err
		}
		return tx.tx.Bucket(bucketActiveJobs).Delete([]byte(key))
	case *Subnet:
		if _, err := tx.unsafeDelete(kind, key, expect); err != nil {
			return err
		}
		return tx.bumpIPAMGen()
	case *Order:
		if _, err := tx.unsafeDelete(kind, key, expect); err != nil {
			return err
		}
		return tx.tx.Bucket(bucketWaitingOrd).Delete([]byte(key))
	case *Image, *Artifact:
		if _, err := tx.unsafeDelete(kind, key, expect); err != nil {
			return err
		}
		return tx.bumpArtifactGen()
	}
	_, err := tx.unsafeDelete(kind, key, expect)
	return err
}

// Raw returns the stored bytes of the object of kind's type with key (nil
// if there is none), for a reader that needs one field of a hot object.
// They are valid for the transaction only.
func (tx *Tx) Raw(kind Object, key string) []byte {
	return tx.tx.Bucket(kind.bucket()).Get([]byte(key))
}

// ForEachRaw calls fn with the key and stored bytes of every object of
// kind's type, in key order, for a reader that needs one field of each
// (the machine search reads only a workflow's status). They are valid
// during the call only.
func (tx *Tx) ForEachRaw(kind Object, fn func(key, raw []byte) error) error {
	return tx.tx.Bucket(kind.bucket()).ForEach(fn)
}

// IPAMGeneration changes whenever something address management derives
// its state from changes other than through the DHCP server's own lease
// commits: a subnet, a machine's interfaces, a lease deleted by an
// operator. The DHCP server rebuilds its allocators when it moves.
func (tx *Tx) IPAMGeneration() uint64 {
	return readU64(tx.tx.Bucket(bucketMeta).Get(keyIPAMGen))
}

func (tx *Tx) bumpIPAMGen() error {
	return tx.tx.Bucket(bucketMeta).Put(keyIPAMGen, u64(tx.IPAMGeneration()+1))
}
