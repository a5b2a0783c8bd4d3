package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/boltfile"
	"github.com/outposthq/outpost/internal/seal"
)

// The buckets of the store, all created by Open. The per-site buckets
// hold one nested bucket per site id.
var (
	bucketMeta      = []byte("meta")      // schema_version
	bucketTokens    = []byte("tokens")    // token id -> Token
	bucketSites     = []byte("sites")     // site id -> Site
	bucketDesired   = []byte("desired")   // site id -> {kind "\x00" key -> object}
	bucketRevisions = []byte("revisions") // site id -> {big-endian revision -> Revision}
	bucketEvents    = []byte("events")    // site id -> {big-endian seq -> Event}
	bucketMembers   = []byte("members")   // node id -> Member (replicated central)
	bucketArtifacts = []byte("artifacts") // sha256 hex -> Artifact
	bucketCatalogue = []byte("catalogue") // image name -> CatalogueImage
	bucketAudit     = []byte("audit")     // big-endian seq -> AuditEntry
	// The fleet model (apply_fleet.go): each machine's record, and the
	// index of its events.
	bucketFleet         = []byte("fleet")          // site id -> {machine id -> fleet.Machine}
	bucketMachineEvents = []byte("machine_events") // site id -> {machine id "\x00" big-endian seq -> empty}
	// The spans of central's and the sites' traces (apply_spans.go),
	// oldest dropped first beyond a bound.
	bucketSpans     = []byte("spans")      // trace id (16) + span id (8) -> tracing.Span; span id 0: the trace's phases observed
	bucketSpanOrder = []byte("span_order") // big-endian seq -> trace id + span id

	allBuckets = [][]byte{bucketMeta, bucketTokens, bucketSites, bucketDesired, bucketRevisions, bucketEvents, bucketMembers, bucketArtifacts, bucketCatalogue,
		bucketAudit, bucketFleet, bucketMachineEvents, bucketSpans, bucketSpanOrder, bucketAnnotations}

	keySchemaVersion = []byte("schema_version")
	keyAppliedIndex  = []byte("applied_index")
)

// schemaVersion is the layout this code reads and writes. A file with a
// newer version is refused at open rather than misread.
const schemaVersion = 1

// Errors of the store itself. Domain errors (bad input, not found,
// conflicts) are *errs.Error values.
var (
	ErrCorrupt = errors.New("store: corrupt data file")
	ErrClosed  = errors.New("store: closed")
)

// DB is central's store. Every method is one transaction; it is safe for
// concurrent use.
type DB struct {
	path string
	// mu guards db: held shared by every transaction, exclusively by
	// Restore while it swaps the file.
	mu  sync.RWMutex
	db  *bolt.DB
	now func() time.Time
	// proposer, when set, is where changes go (SetProposer).
	proposer atomic.Pointer[Proposer]
	// check, when set, is what a proposal of a type above
	// LastUnreported passes first (SetCommandCheck, skew.go).
	check atomic.Pointer[CommandCheck]
	// Without one, applyLocal's queue: commands waiting for the commit
	// under way (committing) to end, to go in the next.
	gmu        sync.Mutex
	queue      []*localCmd
	committing bool
	// key seals BMC passwords at rest (KeyFile).
	key *seal.Key

	// index is the fleet's in-memory index (fleetindex.go), brought up
	// to date after each commit.
	index atomic.Pointer[fleetIndex]
	// live, if set, says whether this node holds a site's session now
	// (SetLive).
	live atomic.Pointer[LiveFunc]

	// watchers: a channel per "d/" or "e/" + site id, or "a/" for the
	// catalogue of artifacts, closed (and
	// forgotten) when a write for it commits.
	wmu      sync.Mutex
	watchers map[string]chan struct{}
}

// Open opens the store at path, creating it if it does not exist. A file
// that is empty, that bbolt cannot read (every page is read first: package
// boltfile), or whose schema is newer than this code, is an error wrapping
// ErrCorrupt that names the file: never a new, empty store.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	bdb, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	key, err := loadKey(KeyFile(path))
	if err != nil {
		bdb.Close()
		return nil, err
	}
	d := &DB{path: path, db: bdb, now: time.Now, key: key, watchers: map[string]chan struct{}{}}
	if err := d.loadIndex(0); err != nil {
		bdb.Close()
		return nil, err
	}
	return d, nil
}

// loadIndex loads the fleet's index from the file, at a version past
// after (the version of the index it replaces), and wakes the watchers
// of the one it replaces.
func (d *DB) loadIndex(after uint64) error {
	var x *fleetIndex
	err := d.db.View(func(tx *bolt.Tx) (err error) {
		x, err = loadFleetIndex(tx, max(after+1, versionSeed()))
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %s: the fleet's records: %v", ErrCorrupt, d.path, err)
	}
	if old := d.index.Swap(x); old != nil {
		old.mu.Lock()
		close(old.changed)
		old.changed = make(chan struct{})
		old.mu.Unlock()
	}
	return nil
}

// openBolt opens the file at path and makes sure it has every bucket and
// a schema this code reads.
func openBolt(path string) (*bolt.DB, error) {
	bdb, err := boltfile.Open(path, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, boltfile.ErrLocked) {
		return nil, fmt.Errorf("store: %w", err)
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchemaVersion); v != nil && readU64(v) > schemaVersion {
			return fmt.Errorf("schema version %d is newer than this central understands (%d)", readU64(v), schemaVersion)
		}
		return meta.Put(keySchemaVersion, u64(schemaVersion))
	})
	if err != nil {
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

// KeyFile is where the key that seals BMC passwords at rest lives, beside
// the store at path. Back it up with the store: without it the sealed
// passwords are lost.
func KeyFile(path string) string { return filepath.Join(filepath.Dir(path), "central.key") }

// Path returns the file the store lives in.
func (d *DB) Path() string { return d.path }

// Close closes the store. It is safe to call more than once.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return nil
	}
	return d.db.Close()
}

func (d *DB) view(fn func(tx *bolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	err := d.db.View(fn)
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func (d *DB) update(fn func(tx *bolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	err := d.db.Update(fn)
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// WatchDesired returns a channel closed when the next revision of site's
// desired state commits.
func (d *DB) WatchDesired(site string) <-chan struct{} { return d.watch("d/" + site) }

// WatchEvents returns a channel closed when the next events of site
// commit.
func (d *DB) WatchEvents(site string) <-chan struct{} { return d.watch("e/" + site) }

func (d *DB) watch(key string) <-chan struct{} {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	ch, ok := d.watchers[key]
	if !ok {
		ch = make(chan struct{})
		d.watchers[key] = ch
	}
	return ch
}

// notifyAll wakes the watchers of keys.
func (d *DB) notifyAll(keys []string) {
	if len(keys) == 0 {
		return
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	for _, key := range keys {
		if ch, ok := d.watchers[key]; ok {
			close(ch)
			delete(d.watchers, key)
		}
	}
}

// notifyEveryone wakes every watcher (after Restore replaced the state).
func (d *DB) notifyEveryone() {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	for key, ch := range d.watchers {
		close(ch)
		delete(d.watchers, key)
	}
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

// get decodes the value of key in bucket b into a new T, or returns nil
// if there is none.
func get[T any](b *bolt.Bucket, key []byte) (*T, error) {
	raw := b.Get(key)
	if raw == nil {
		return nil, nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
	}
	return v, nil
}

func put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", key, err)
	}
	return b.Put(key, raw)
}
