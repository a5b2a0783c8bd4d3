package tracing

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/boltfile"
)

// Store keeps the spans a node recorded (or received: a site's agents',
// central's sites'), bounded: beyond its limit the oldest are dropped.
// It is one bbolt file beside the node's store, written once per batch
// of spans, never through Raft. Spans are numbered in the order they were
// added; a forwarding cursor (Forwarded) says up to which number they
// have reached where they are forwarded to.
//
// Spans are keyed by their trace and span ids too, so a span added twice
// (sent again after a lost acknowledgement) is kept once.
type Store struct {
	path string
	db   *bolt.DB
	max  int
}

var (
	bucketSpans = []byte("spans")  // seq -> Span JSON
	bucketIndex = []byte("traces") // trace id (16) + span id (8) -> seq
	bucketMeta  = []byte("meta")
	keyCount    = []byte("count")
	keyNext     = []byte("next")
	keyFwd      = []byte("forwarded")
)

// DefaultMaxSpans bounds a Store by default: about 100 provisions'
// worth of spans a thousand times over, some tens of MiB on disk.
const DefaultMaxSpans = 200_000

// OpenStore opens (or makes) the span file at path, keeping at most max
// spans (DefaultMaxSpans if max <= 0). A damaged file is an error naming
// it; it is left as it was (it holds spans only: removing it loses them
// and nothing else).
func OpenStore(path string, max int) (*Store, error) {
	if max <= 0 {
		max = DefaultMaxSpans
	}
	db, err := boltfile.Open(path, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("tracing: span store: %w (it holds spans only: removing it loses them and nothing else)", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSpans, bucketIndex, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("tracing: span store %s: %w", path, err)
	}
	return &Store{path: path, db: db, max: max}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Add keeps spans, in one transaction: those already kept (the same
// trace and span id) are skipped, and the oldest are dropped beyond the
// store's limit.
func (s *Store) Add(spans []Span) error {
	if len(spans) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, idx, meta := tx.Bucket(bucketSpans), tx.Bucket(bucketIndex), tx.Bucket(bucketMeta)
		count, next := getU64(meta, keyCount), getU64(meta, keyNext)
		for i := range spans {
			key, err := indexKey(spans[i].TraceID, spans[i].SpanID)
			if err != nil {
				return err
			}
			if idx.Get(key) != nil {
				continue
			}
			raw, err := json.Marshal(&spans[i])
			if err != nil {
				return err
			}
			next++
			if err := b.Put(u64(next), raw); err != nil {
				return err
			}
			if err := idx.Put(key, u64(next)); err != nil {
				return err
			}
			count++
		}
		for c := b.Cursor(); count > uint64(s.max); count-- {
			k, v := c.First()
			if k == nil {
				break
			}
			var old Span
			if json.Unmarshal(v, &old) == nil {
				if key, err := indexKey(old.TraceID, old.SpanID); err == nil {
					if err := idx.Delete(key); err != nil {
						return err
					}
				}
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		if err := meta.Put(keyCount, u64(count)); err != nil {
			return err
		}
		return meta.Put(keyNext, u64(next))
	})
}

// Trace returns the spans kept of the trace id (32 hex digits), by
// start.
func (s *Store) Trace(traceID string) ([]Span, error) {
	tid, err := hex.DecodeString(traceID)
	if err != nil || len(tid) != 16 {
		return nil, fmt.Errorf("tracing: trace id %q is not 32 hex digits", traceID)
	}
	var out []Span
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSpans)
		c := tx.Bucket(bucketIndex).Cursor()
		for k, v := c.Seek(tid); k != nil && string(k[:16]) == string(tid); k, v = c.Next() {
			var sp Span
			if err := json.Unmarshal(b.Get(v), &sp); err != nil {
				return fmt.Errorf("tracing: span store %s: span %x: %w", s.path, k[16:], err)
			}
			out = append(out, sp)
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b Span) int { return a.Start.Compare(b.Start) })
	return out, err
}

// After returns at most limit spans numbered after seq, and the number
// of the last one returned (seq if none).
func (s *Store) After(seq uint64, limit int) ([]Span, uint64, error) {
	var out []Span
	last := seq
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSpans).Cursor()
		for k, v := c.Seek(u64(seq + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var sp Span
			if err := json.Unmarshal(v, &sp); err != nil {
				return fmt.Errorf("tracing: span store %s: span number %d: %w", s.path, binary.BigEndian.Uint64(k), err)
			}
			out = append(out, sp)
			last = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return out, last, err
}

// Last is the number of the last span added (0 if none ever was).
func (s *Store) Last() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v = getU64(tx.Bucket(bucketMeta), keyNext)
		return nil
	})
	return v, err
}

// Forwarded is the forwarding cursor: every span numbered up to it has
// been forwarded.
func (s *Store) Forwarded() (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v = getU64(tx.Bucket(bucketMeta), keyFwd)
		return nil
	})
	return v, err
}

// SetForwarded moves the forwarding cursor to seq (never back).
func (s *Store) SetForwarded(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if seq <= getU64(meta, keyFwd) {
			return nil
		}
		return meta.Put(keyFwd, u64(seq))
	})
}

// Len is how many spans the store keeps.
func (s *Store) Len() (int, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		n = getU64(tx.Bucket(bucketMeta), keyCount)
		return nil
	})
	return int(n), err
}

var errID = errors.New("tracing: a span's trace id is 32 hex digits and its span id 16")

func indexKey(traceID, spanID string) ([]byte, error) {
	key := make([]byte, 24)
	if n, err := hex.Decode(key[:16], []byte(traceID)); err != nil || n != 16 || len(traceID) != 32 {
		return nil, fmt.Errorf("%w: trace id %q", errID, traceID)
	}
	if n, err := hex.Decode(key[16:], []byte(spanID)); err != nil || n != 8 || len(spanID) != 16 {
		return nil, fmt.Errorf("%w: span id %q", errID, spanID)
	}
	return key, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, key []byte) uint64 {
	if v := b.Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
