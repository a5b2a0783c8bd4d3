// Package boltfile checks bbolt files before anything opens them for
// writing, for every bbolt file of both sides: the appliance's store,
// central's store and the Raft log (raft.db) that internal/raftnode opens
// through raft-boltdb.
//
// A read-write bbolt Open trusts the file: it panics on a damaged
// freelist, faults (SIGBUS) on a file truncated below its last page, and
// rebuilds an unsynced freelist in a goroutine that panics on a damaged
// page; and it makes a zero-length file a new, empty database. Check
// opens an existing file read-only and reads every page once in the
// calling goroutine, where faults and panics are recovered, so a damaged
// file is an error naming it, found at start-up rather than in the middle
// of a boot storm, and an empty file is never taken for a new one.
//
// Check and View change nothing: a refused file is left as it was, for
// the operator to examine or restore.
package boltfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors of Check, View and Open. The errors returned match one of them
// (errors.Is) and say which file and what was found.
var (
	// ErrEmpty means the file exists but has no bytes: it is not a new
	// database, it is one that lost its contents.
	ErrEmpty = errors.New("boltfile: the file is empty")
	// ErrDamaged means the file is not a whole bbolt file: too short,
	// truncated below its last page, or with pages that do not read.
	ErrDamaged = errors.New("boltfile: the file is damaged")
	// ErrLocked means another process holds the file open.
	ErrLocked = errors.New("boltfile: the file is locked by another process")
)

// minSize is the smallest whole bbolt file: two meta pages, a freelist
// and a root page would be more, but no page size is below 1 KiB and a
// file shorter than one 4 KiB page cannot hold even the meta pages bbolt
// writes at creation.
const minSize = 4096

// lockTimeout bounds the wait for another process's lock.
const lockTimeout = 5 * time.Second

// Check reads every page of the bbolt file at path once and reports
// whether it is whole. A missing file is an error matching fs.ErrNotExist
// (the caller decides whether a new file may be made); an empty one
// matches ErrEmpty; a damaged one ErrDamaged; one held by another process
// ErrLocked.
func Check(path string) error {
	return View(path, func(*bolt.Tx) error { return nil })
}

// View checks the file at path (Check) and runs fn in a read-only
// transaction of it, with faults and panics recovered as ErrDamaged
// errors. The file is closed when View returns.
func View(path string, fn func(tx *bolt.Tx) error) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fail(ErrEmpty, "%s is empty (0 bytes)", path)
	}
	if fi.Size() < minSize {
		return fail(ErrDamaged, "%s is corrupt: %d bytes, too short to be a bbolt file", path, fi.Size())
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		return openError(path, err)
	}
	defer bdb.Close()
	return bdb.View(func(tx *bolt.Tx) (err error) {
		if tx.Size() > fi.Size() {
			return fail(ErrDamaged, "%s is corrupt: %d bytes, but its pages end at %d: the file is truncated", path, fi.Size(), tx.Size())
		}
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				err = fail(ErrDamaged, "%s is corrupt: reading its pages: %v", path, r)
			}
		}()
		if err := walk(tx); err != nil {
			return fail(ErrDamaged, "%s is corrupt: %v", path, err)
		}
		return fn(tx)
	})
}

// ReadUint64 reads the big-endian number under key in bucket of the file
// at path with View: 0 if the bucket or the key is missing.
func ReadUint64(path string, bucket, key []byte) (uint64, error) {
	var v uint64
	err := View(path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		raw := b.Get(key)
		if raw == nil {
			return nil
		}
		if len(raw) != 8 {
			return fail(ErrDamaged, "%s is corrupt: %s/%s is %d bytes, not a number", path, bucket, key, len(raw))
		}
		v = binary.BigEndian.Uint64(raw)
		return nil
	})
	return v, err
}

// Open opens the bbolt file at path for writing with opts, after Check if
// it exists: a new file is made only where there was none.
func Open(path string, opts *bolt.Options) (*bolt.DB, error) {
	if err := Check(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	bdb, err := bolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, openError(path, err)
	}
	return bdb, nil
}

func openError(path string, err error) error {
	if errors.Is(err, bolt.ErrTimeout) {
		return fail(ErrLocked, "%s is locked by another process", path)
	}
	return fail(ErrDamaged, "%s is corrupt: %v", path, err)
}

// fileError is an error of one of the kinds above, with its own message
// (the path and what was found, without the kind's words again).
type fileError struct {
	kind error
	msg  string
}

func fail(kind error, format string, args ...any) error {
	return &fileError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func (e *fileError) Error() string { return e.msg }
func (e *fileError) Unwrap() error { return e.kind }

// walk reads every key and value of every bucket, then runs bbolt's own
// consistency check.
func walk(tx *bolt.Tx) error {
	if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walkBucket(b) }); err != nil {
		return err
	}
	// Drain the channel: its goroutine reads the file until it closes it.
	var first error
	for cerr := range tx.Check() {
		if first == nil {
			first = cerr
		}
	}
	if first != nil {
		return fmt.Errorf("consistency check: %w", first)
	}
	return nil
}

// walkBucket reads every key and value of b and its sub-buckets.
func walkBucket(b *bolt.Bucket) error {
	var sum byte
	return b.ForEach(func(k, v []byte) error {
		for _, c := range k {
			sum ^= c
		}
		for _, c := range v {
			sum ^= c
		}
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				return walkBucket(sub)
			}
		}
		return nil
	})
}
