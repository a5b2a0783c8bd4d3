package artifact

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// Errors of the store.
var (
	// ErrNotFound: the node does not hold the artifact.
	ErrNotFound = errors.New("artifact: not held here")
	// ErrTooLarge: an upload or fetch went past its stated size.
	ErrTooLarge = errors.New("artifact: larger than its stated size")
)

// CorruptError says that bytes did not hash to the digest they were
// fetched or uploaded as. They were thrown away.
type CorruptError struct {
	Want, Got Digest
	Size      int64
	Source    string // where they came from ("" for an upload)
}

func (e *CorruptError) Error() string {
	from := ""
	if e.Source != "" {
		from = " from " + e.Source
	}
	return fmt.Sprintf("artifact %s: the %d bytes received%s hash to sha256:%s: corrupt, discarded", e.Want.Ref(), e.Size, from, e.Got.Short())
}

// Info is one artifact a store holds.
type Info struct {
	Digest Digest `json:"sha256"`
	Size   int64  `json:"size_bytes"`
}

// Store is one node's directory of artifacts. It is safe for concurrent
// use; a digest is written by one fetch at a time (the caller's
// Replicator), while any number of readers serve what is whole.
type Store struct {
	dir string
	mu  sync.Mutex // guards fetching
	// fetching holds the digests with a fetch in progress, so that two
	// do not write one partial file.
	fetching map[Digest]bool
}

// Open opens (creating) the store in dir and removes uploads a crash
// left. Partial fetches are kept, to be resumed.
func Open(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "sha256"), filepath.Join(dir, "partial"), filepath.Join(dir, "upload")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("artifact: open store: %w", err)
		}
	}
	up := filepath.Join(dir, "upload")
	ents, err := os.ReadDir(up)
	if err != nil {
		return nil, fmt.Errorf("artifact: open store: %w", err)
	}
	for _, e := range ents {
		os.Remove(filepath.Join(up, e.Name()))
	}
	return &Store{dir: dir, fetching: map[Digest]bool{}}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(d Digest) string    { return filepath.Join(s.dir, "sha256", string(d)) }
func (s *Store) partial(d Digest) string { return filepath.Join(s.dir, "partial", string(d)) }

// Stat reports whether the store holds d, and its size.
func (s *Store) Stat(d Digest) (int64, bool) {
	if !d.valid() {
		return 0, false
	}
	fi, err := os.Stat(s.path(d))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// Open opens d for reading. It fails with ErrNotFound if the store does
// not hold it.
func (s *Store) Open(d Digest) (*os.File, os.FileInfo, error) {
	if !d.valid() {
		return nil, nil, ErrNotFound
	}
	f, err := os.OpenFile(s.path(d), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, ErrNotFound
	}
	return f, fi, nil
}

// List returns what the store holds, by digest.
func (s *Store) List() ([]Info, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "sha256"))
	if err != nil {
		return nil, fmt.Errorf("artifact: list: %w", err)
	}
	var out []Info
	for _, e := range ents {
		d := Digest(e.Name())
		if !d.valid() || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, Info{Digest: d, Size: fi.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// Usage is the bytes the store's artifacts and partial fetches take.
func (s *Store) Usage() (whole, partial int64) {
	list, _ := s.List()
	for _, i := range list {
		whole += i.Size
	}
	ents, _ := os.ReadDir(filepath.Join(s.dir, "partial"))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			partial += fi.Size()
		}
	}
	return whole, partial
}

// Partial is how many bytes of d a broken fetch left to resume from.
func (s *Store) Partial(d Digest) int64 {
	if !d.valid() {
		return 0
	}
	fi, err := os.Stat(s.partial(d))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Remove deletes d and any partial fetch of it. Removing what the store
// does not hold is not an error. A reader that has d open keeps reading
// it (the inode lives until closed).
func (s *Store) Remove(d Digest) error {
	if !d.valid() {
		return fmt.Errorf("%w: %q", ErrBadDigest, clip(string(d)))
	}
	for _, p := range []string{s.path(d), s.partial(d)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("artifact: remove %s: %w", d.Short(), err)
		}
	}
	return syncDir(filepath.Join(s.dir, "sha256"))
}

// Verify rehashes d and reports a *CorruptError (and removes d) if its
// bytes changed on disk.
func (s *Store) Verify(d Digest) error {
	f, fi, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("artifact: verify %s: %w", d.Short(), err)
	}
	if got := Digest(hex.EncodeToString(h.Sum(nil))); got != d {
		s.Remove(d)
		return &CorruptError{Want: d, Got: got, Size: fi.Size(), Source: "this node's disk"}
	}
	return nil
}

// Put stores the artifact r holds: an upload. want, if not empty, is the
// digest the uploader says it has, and size, if not negative, its length;
// bytes that differ are refused (a *CorruptError, ErrTooLarge) and
// nothing is kept. It returns the artifact, which may have been there
// already.
func (s *Store) Put(ctx context.Context, r io.Reader, want Digest, size int64) (Info, error) {
	if want != "" && !want.valid() {
		return Info{}, fmt.Errorf("%w: %q", ErrBadDigest, clip(string(want)))
	}
	var name [12]byte
	rand.Read(name[:])
	tmp := filepath.Join(s.dir, "upload", hex.EncodeToString(name[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return Info{}, fmt.Errorf("artifact: upload: %w", err)
	}
	defer os.Remove(tmp) // after the rename, a no-op
	h := sha256.New()
	n, err := copyHashed(ctx, f, h, r, size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Info{}, err
	}
	got := Digest(hex.EncodeToString(h.Sum(nil)))
	switch {
	case want != "" && got != want:
		return Info{}, &CorruptError{Want: want, Got: got, Size: n}
	case size >= 0 && n != size:
		return Info{}, fmt.Errorf("artifact: upload ended after %d of %d bytes", n, size)
	}
	if _, ok := s.Stat(got); ok {
		return Info{Digest: got, Size: n}, nil
	}
	if err := s.publish(tmp, got); err != nil {
		return Info{}, err
	}
	return Info{Digest: got, Size: n}, nil
}

// publish makes tmp, verified as d, the artifact d: read-only, synced,
// renamed into place, the directory synced.
func (s *Store) publish(tmp string, d Digest) error {
	if err := os.Chmod(tmp, 0o444); err != nil {
		return fmt.Errorf("artifact: publish %s: %w", d.Short(), err)
	}
	if err := os.Rename(tmp, s.path(d)); err != nil {
		return fmt.Errorf("artifact: publish %s: %w", d.Short(), err)
	}
	return syncDir(filepath.Join(s.dir, "sha256"))
}

// copyHashed copies r into w and h, at most limit bytes if limit >= 0
// (ErrTooLarge past it), stopping when ctx ends.
func copyHashed(ctx context.Context, w io.Writer, h hash.Hash, r io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := r.Read(buf)
		if k > 0 {
			if limit >= 0 && n+int64(k) > limit {
				return n, ErrTooLarge
			}
			h.Write(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("artifact: write: %w", err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
