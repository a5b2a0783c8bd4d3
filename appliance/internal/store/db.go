package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/boltfile"
)

// ErrCorrupt wraps every error from a data file this code cannot read.
// Domain errors (bad input, not found, conflicts) are *errs.Error values.
var ErrCorrupt = errors.New("store: corrupt data file")

// DB is the site store. Reads go through View; writes go through Update,
// which only the replicated state machine calls.
type DB struct {
	path string

	// mu guards db against Restore swapping the file: readers and the
	// applier hold it shared, Restore exclusively.
	mu sync.RWMutex
	db *bolt.DB

	// changed is closed and replaced whenever a write commits, so that
	// watchers (the event stream) wake without polling; changedBesides
	// likewise, but for writes of the DHCP server's leases alone
	// (UpdateLeases), which most watchers have no use for.
	chMu           sync.Mutex
	changed        chan struct{}
	changedBesides chan struct{}
}

// Open opens the store at path, creating it if it does not exist. A file
// that is empty, that bbolt cannot read (every page is read first: package
// boltfile), or whose schema is newer than this code, is an error wrapping
// ErrCorrupt that names the file: the caller must never silently start
// afresh.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	bdb, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	return &DB{path: path, db: bdb, changed: make(chan struct{}), changedBesides: make(chan struct{})}, nil
}

func openBolt(path string) (*bolt.DB, error) {
	bdb, err := boltfile.Open(path, &bolt.Options{
		Timeout:         5 * time.Second,
		InitialMmapSize: 64 << 20,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  true,
	})
	if errors.Is(err, boltfile.ErrLocked) {
		return nil, fmt.Errorf("store: %w", err)
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err := ensureSchema(bdb); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return bdb, nil
}

// ReadAppliedIndex reads the applied index of the store file at path
// without changing the file, after reading every page of it
// (boltfile.View). A missing file is an error matching fs.ErrNotExist, an
// empty or damaged one boltfile.ErrEmpty or ErrDamaged.
func ReadAppliedIndex(path string) (uint64, error) {
	return boltfile.ReadUint64(path, bucketMeta, keyAppliedIndex)
}

// ensureSchema creates missing buckets and checks the schema version.
func ensureSchema(bdb *bolt.DB) (err error) {
	defer func() {
		// bbolt panics on some kinds of damaged pages; a damaged file must
		// surface as an error at open, not crash the daemon later.
		if r := recover(); r != nil {
			err = fmt.Errorf("reading pages: %v", r)
		}
	}()
	return bdb.Update(func(tx *bolt.Tx) error {
		fresh := tx.Bucket(bucketMachines) == nil
		// An index that is missing (a file written before it existed, or
		// damaged) is built again from what it indexes.
		lostIPIndex := !fresh && tx.Bucket(bucketIPIndex) == nil
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		var version uint64
		if v := meta.Get(keySchemaVersion); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("schema version has %d bytes", len(v))
			}
			version = binary.BigEndian.Uint64(v)
		}
		if version > schemaVersion {
			return fmt.Errorf("schema version %d is newer than this appliance understands (%d): run the release that wrote it", version, schemaVersion)
		}
		if !fresh && version < schemaVersion {
			if err := migrate(tx, version); err != nil {
				return fmt.Errorf("migrate from schema version %d: %w", version, err)
			}
		} else if lostIPIndex {
			if err := rebuildIPIndex(tx); err != nil {
				return err
			}
		}
		return meta.Put(keySchemaVersion, u64(schemaVersion))
	})
}

// Path returns the file the store lives in.
func (d *DB) Path() string { return d.path }

// Close closes the store. It is safe to call more than once.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return nil
	}
	err := d.db.Close()
	d.db = nil
	return err
}

// View runs fn in a read-only transaction.
func (d *DB) View(fn func(tx *Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.db == nil {
		return errors.New("store: closed")
	}
	return d.db.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Update runs fn in one read-write transaction and wakes watchers after it
// commits. Only the replicated state machine calls it.
func (d *DB) Update(fn func(tx *Tx) error) error {
	err := d.update(fn)
	if err == nil {
		d.notify(true)
	}
	return err
}

// UpdateLeases is Update for a transaction that writes leases alone
// (with their index, their machines' events and the applied index): it
// wakes the watchers of Changed, not those of ChangedBesidesLeases. The
// DHCP server commits one per offer and ACK; a watcher woken by each
// read the store for nothing.
func (d *DB) UpdateLeases(fn func(tx *Tx) error) error {
	err := d.update(fn)
	if err == nil {
		d.notify(false)
	}
	return err
}

// update runs the transaction under the shared lock, released even if fn
// panics (the FSM panics on a command it cannot apply).
func (d *DB) update(fn func(tx *Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.db == nil {
		return errors.New("store: closed")
	}
	return d.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Changed returns a channel that is closed at the next committed write.
func (d *DB) Changed() <-chan struct{} {
	d.chMu.Lock()
	defer d.chMu.Unlock()
	return d.changed
}

// ChangedBesidesLeases returns a channel that is closed at the next
// committed write that is not UpdateLeases': for watchers of anything
// but leases and events (jobs, artifacts).
func (d *DB) ChangedBesidesLeases() <-chan struct{} {
	d.chMu.Lock()
	defer d.chMu.Unlock()
	return d.changedBesides
}

// notify wakes the watchers of Changed and, if besidesLeases, those of
// ChangedBesidesLeases.
func (d *DB) notify(besidesLeases bool) {
	d.chMu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	if besidesLeases {
		close(d.changedBesides)
		d.changedBesides = make(chan struct{})
	}
	d.chMu.Unlock()
}

// AppliedIndex returns the Raft index of the last command applied.
func (d *DB) AppliedIndex() uint64 {
	var idx uint64
	_ = d.View(func(tx *Tx) error { idx = tx.AppliedIndex(); return nil })
	return idx
}

// Snapshot is a consistent, point-in-time copy of the store.
type Snapshot struct {
	mu  *sync.RWMutex
	tx  *bolt.Tx
	idx uint64
}

// Snapshot opens a read transaction that pins the current state until
// Release. It holds the store's shared lock, so a Restore waits for it.
func (d *DB) Snapshot() (*Snapshot, error) {
	d.mu.RLock()
	if d.db == nil {
		d.mu.RUnlock()
		return nil, errors.New("store: closed")
	}
	btx, err := d.db.Begin(false)
	if err != nil {
		d.mu.RUnlock()
		return nil, fmt.Errorf("store: begin snapshot: %w", err)
	}
	s := &Snapshot{mu: &d.mu, tx: btx}
	s.idx = (&Tx{tx: btx}).AppliedIndex()
	return s, nil
}

// Index is the applied index the snapshot was taken at.
func (s *Snapshot) Index() uint64 { return s.idx }

// WriteTo streams the snapshot as a complete bbolt file.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }

// Release ends the snapshot's transaction. It is safe to call more than once.
func (s *Snapshot) Release() {
	if s.tx == nil {
		return
	}
	_ = s.tx.Rollback()
	s.tx = nil
	s.mu.RUnlock()
}

// Restore replaces the store's contents with the bbolt file read from r.
// The new file is written and checked beside the old one before it is
// swapped in, so a bad snapshot leaves the store as it was.
func (d *DB) Restore(r io.Reader) error {
	tmp := d.path + ".restore"
	if err := writeFileSync(tmp, r); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	check, err := openBolt(tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: restore: %w", err)
	}
	check.Close()

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			return fmt.Errorf("store: restore: close current: %w", err)
		}
		d.db = nil
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := syncDir(filepath.Dir(d.path)); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	bdb, err := openBolt(d.path)
	if err != nil {
		return fmt.Errorf("store: restore: reopen: %w", err)
	}
	d.db = bdb
	go d.notify(true)
	return nil
}

func writeFileSync(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func readU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func decode[T any](bucket []byte, key, raw []byte) (*T, error) {
	v := new(T)
	if l, ok := any(v).(*Lease); ok {
		if parseLeaseJSON(raw, l) {
			return v, nil
		}
		*l = Lease{}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		// A value the store wrote itself that does not decode is damage,
		// not bad input.
		return nil, fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, bucket, key, err)
	}
	return v, nil
}
