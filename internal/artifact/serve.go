package artifact

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Serve answers GET and HEAD of d from the store, with Range (one range
// or several), If-Range, If-None-Match and the digest as the strong
// ETag. The body goes from the page cache to the socket with sendfile(2)
// (http.ServeContent copies the *os.File into the connection). It returns
// ErrNotFound, having written nothing, if the store does not hold d, so
// the caller may answer otherwise (from a peer); other failures are
// answered here.
func (s *Store) Serve(w http.ResponseWriter, r *http.Request, d Digest) error {
	f, fi, err := s.Open(d)
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy, retry", http.StatusServiceUnavailable)
			return nil
		}
		http.Error(w, "cannot read the artifact", http.StatusInternalServerError)
		return nil
	}
	defer f.Close()
	SetHeaders(w.Header(), d)
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}

// SetHeaders sets the headers every answer of d carries: its digest as a
// strong ETag, Digest and X-Checksum-Sha256, and an immutable cache
// lifetime (a digest's bytes never change).
func SetHeaders(h http.Header, d Digest) {
	sum, _ := hex.DecodeString(string(d))
	h.Set("ETag", `"sha256-`+string(d)+`"`)
	h.Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sum))
	h.Set("X-Checksum-Sha256", string(d))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age="+maxAge+", immutable")
}

var maxAge = strconv.FormatInt(int64(365*24*time.Hour/time.Second), 10)
