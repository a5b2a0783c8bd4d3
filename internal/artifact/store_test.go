package artifact

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// Put computes the digest, refuses bytes that differ from what the
// uploader said and keeps nothing of them.
func TestPut(t *testing.T) {
	data, d := blob(3<<20 + 17)
	_, other := blob(10)
	tests := map[string]struct {
		r       func() *bytes.Reader
		want    Digest
		size    int64
		corrupt bool
		wantErr string // "" for success
	}{
		"digest computed":      {want: "", size: -1},
		"digest and size said": {want: d, size: int64(len(data))},
		"wrong digest":         {want: other, size: int64(len(data)), corrupt: true, wantErr: "corrupt, discarded"},
		"fewer bytes than said": {want: d, size: int64(len(data)) + 1,
			wantErr: "artifact: upload ended after 3145745 of 3145746 bytes"},
		"more bytes than said": {size: int64(len(data)) - 1, wantErr: ErrTooLarge.Error()},
		"not a digest":         {want: "sha256:" + d, size: -1, wantErr: ErrBadDigest.Error()},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			info, err := s.Put(t.Context(), bytes.NewReader(data), tt.want, tt.size)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(Info{Digest: d, Size: int64(len(data))}, info); diff != "" {
					t.Errorf("Put (-want +got):\n%s", diff)
				}
				if b := contents(t, s, d); !bytes.Equal(b, data) {
					t.Error("the store holds other bytes than the upload's")
				}
				assertEmpty(t, s, "upload")
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Put: %v, want %q", err, tt.wantErr)
			}
			var ce *CorruptError
			if tt.corrupt && (!errors.As(err, &ce) || ce.Want != other || ce.Got != d || ce.Size != int64(len(data)) || ce.Source != "") {
				t.Errorf("Put: %#v, want a *CorruptError of the upload", err)
			}
			if l, err := s.List(); len(l) != 0 || err != nil {
				t.Errorf("List = %v, %v; want nothing", l, err)
			}
			assertEmpty(t, s, "upload")
			assertEmpty(t, s, "sha256")
		})
	}
}

// assertEmpty fails the test if the store's sub directory holds a file.
func assertEmpty(t *testing.T, s *Store, sub string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Dir(), sub))
	if err != nil || len(ents) != 0 {
		t.Errorf("%s/ holds %v (%v)", sub, ents, err)
	}
}

// Putting what the store holds is fine, and changes nothing.
func TestPutExisting(t *testing.T) {
	data, d := blob(1000)
	s := openStore(t)
	for range 2 {
		if info, err := s.Put(t.Context(), bytes.NewReader(data), d, int64(len(data))); err != nil || info.Digest != d {
			t.Fatalf("Put = %v, %v", info, err)
		}
	}
	if l, _ := s.List(); !cmp.Equal(l, []Info{{Digest: d, Size: 1000}}) {
		t.Errorf("List = %v", l)
	}
	assertEmpty(t, s, "upload")
}

// An upload whose reader fails keeps nothing.
func TestPutReadError(t *testing.T) {
	data, d := blob(100 << 10)
	s := openStore(t)
	r := iotest.TimeoutReader(bytes.NewReader(data)) // fails its second read
	if _, err := s.Put(t.Context(), r, d, -1); !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("Put: %v, want the reader's error", err)
	}
	assertEmpty(t, s, "upload")
	assertEmpty(t, s, "sha256")
}

// Open removes the uploads a crash left, keeps partial fetches and the
// artifacts, and ignores what is not an artifact.
func TestOpenCleansUp(t *testing.T) {
	data, d := blob(1000)
	s := openStore(t)
	if _, err := s.Put(t.Context(), bytes.NewReader(data), d, -1); err != nil {
		t.Fatal(err)
	}
	_, p := blob(2000)
	writePartial(t, s, p, []byte("half"))
	for name, sub := range map[string]string{"0123abcd": "upload", "README": "sha256"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), sub, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, s, "upload")
	if l, _ := s.List(); !cmp.Equal(l, []Info{{Digest: d, Size: 1000}}) {
		t.Errorf("List = %v", l)
	}
	if n := s.Partial(p); n != 4 {
		t.Errorf("Partial = %d, want the 4 bytes kept", n)
	}
	if whole, partial := s.Usage(); whole != 1000 || partial != 4 {
		t.Errorf("Usage = %d, %d; want 1000, 4", whole, partial)
	}
}

// Remove deletes the artifact and its partial; a reader that has it open
// reads on. Removing what is not there is fine.
func TestRemove(t *testing.T) {
	data, d := blob(5000)
	s := openStore(t)
	if _, err := s.Put(t.Context(), bytes.NewReader(data), d, -1); err != nil {
		t.Fatal(err)
	}
	writePartial(t, s, d, []byte("stale"))
	f, _, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 2 {
		if err := s.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.Stat(d); ok || s.Partial(d) != 0 {
		t.Error("still held")
	}
	if _, _, err := s.Open(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Remove: %v", err)
	}
	b, err := os.ReadFile(f.Name())
	if err == nil {
		t.Errorf("the file is still there (%d bytes)", len(b))
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("an open reader got %d bytes, %v", buf.Len(), err)
	}
	if err := s.Remove("../sha256"); !errors.Is(err, ErrBadDigest) {
		t.Errorf("Remove of a path: %v", err)
	}
}

// Verify finds an artifact whose bytes changed on disk and removes it.
func TestVerify(t *testing.T) {
	data, d := blob(4096)
	s := openStore(t)
	if _, err := s.Put(t.Context(), bytes.NewReader(data), d, -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(d); err != nil {
		t.Fatalf("Verify of a good artifact: %v", err)
	}
	if err := os.Chmod(s.path(d), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[100] ^= 1
	if err := os.WriteFile(s.path(d), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if err := s.Verify(d); !errors.As(err, &ce) || ce.Got != digestOf(bad) {
		t.Fatalf("Verify: %v, want a *CorruptError", err)
	}
	if _, ok := s.Stat(d); ok {
		t.Error("the corrupt artifact is still held")
	}
	if err := s.Verify(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify of a missing artifact: %v", err)
	}
}
