package boltfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/testdir"
)

// sample writes a bbolt file of many pages (a bucket with a nested one,
// a number under meta/n, a string under meta/s) and returns its bytes.
func sample(t *testing.T, path string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, 42)); err != nil {
			return err
		}
		if err := meta.Put([]byte("s"), []byte("abc")); err != nil {
			return err
		}
		data, err := tx.CreateBucket([]byte("data"))
		if err != nil {
			return err
		}
		sub, err := data.CreateBucket([]byte("sub"))
		if err != nil {
			return err
		}
		for i := range 2000 {
			k := fmt.Appendf(nil, "key-%05d", i)
			if err := sub.Put(k, bytes.Repeat(k, 8)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestCheck refuses every file that is not a whole bbolt file with an
// error of the right kind that names the file, and leaves the file as it
// was.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := sample(t, filepath.Join(dir, "good.db"))
	used := testdir.PagesEnd(t, filepath.Join(dir, "good.db"))
	const pageSize = 4096
	damaged := bytes.Clone(good)
	copy(damaged[4*pageSize:], bytes.Repeat([]byte{0xAB}, used-4*pageSize))

	tests := map[string]struct {
		content []byte // nil: no file
		want    error
		say     string // in the message besides the path
	}{
		"whole":                 {content: good},
		"missing":               {want: fs.ErrNotExist},
		"empty":                 {content: []byte{}, want: ErrEmpty, say: "empty (0 bytes)"},
		"shorter than a page":   {content: good[:100], want: ErrDamaged, say: "too short"},
		"truncated below pages": {content: good[:used-pageSize], want: ErrDamaged, say: "truncated"},
		"cut to the meta pages": {content: good[:2*pageSize], want: ErrDamaged, say: "truncated"},
		"damaged pages":         {content: damaged, want: ErrDamaged, say: "is corrupt"},
		"zeros":                 {content: make([]byte, 8*pageSize), want: ErrDamaged, say: "is corrupt"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			if tc.content != nil {
				if err := os.WriteFile(path, tc.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := Check(path)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check of a whole file: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.say) {
				t.Errorf("Check = %q: want it to name %s and say %q", err, path, tc.say)
			}
			if tc.content == nil {
				return
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tc.content) {
				t.Errorf("Check changed the file (%d bytes before, %d after)", len(tc.content), len(after))
			}
			// Open refuses it too, and makes no new database of it.
			if db, err := Open(path, nil); !errors.Is(err, tc.want) {
				if db != nil {
					db.Close()
				}
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tc.content) {
				t.Errorf("Open changed the file (%d bytes before, %d after)", len(tc.content), len(after))
			}
		})
	}
}

// TestOpenNew makes a new file only where there was none.
func TestOpenNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Check(path); err != nil {
		t.Errorf("Check of the new file: %v", err)
	}
}

func TestReadUint64(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	sample(t, path)
	tests := map[string]struct {
		bucket, key string
		want        uint64
		err         error
	}{
		"present":        {bucket: "meta", key: "n", want: 42},
		"missing key":    {bucket: "meta", key: "m"},
		"missing bucket": {bucket: "nope", key: "n"},
		"not a number":   {bucket: "meta", key: "s", err: ErrDamaged},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ReadUint64(path, []byte(tc.bucket), []byte(tc.key))
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("ReadUint64(%s/%s) = %d, %v; want %d, %v", tc.bucket, tc.key, got, err, tc.want, tc.err)
			}
		})
	}
	if _, err := ReadUint64(filepath.Join(t.TempDir(), "none.db"), []byte("meta"), []byte("n")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadUint64 of a missing file = %v, want fs.ErrNotExist", err)
	}
}
