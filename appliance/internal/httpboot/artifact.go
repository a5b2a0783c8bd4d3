package httpboot

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// errNotRegular refuses directories, devices, FIFOs and sockets.
var errNotRegular = errors.New("httpboot: not a regular file")

// serveArtifact serves GET and HEAD /artifacts/{name...} from ArtifactDir.
//
// http.ServeContent does the HTTP: Range (one range, or several as
// multipart/byteranges), If-Range, If-None-Match, If-Modified-Since,
// Last-Modified and Content-Length. Because the body is an *os.File, a
// whole file or a single range goes from the page cache to the socket with
// sendfile(2): ServeContent io.Copies the file into the ResponseWriter,
// whose ReadFrom hands it to the TCP connection's.
func (s *Server) serveArtifact(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f, fi, err := s.openArtifact(name)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			s.log.Warn("artifact: out of file descriptors", "err", err)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy, retry", http.StatusServiceUnavailable)
			return
		}
		s.log.Debug("artifact: not served", "name", name, "remote", r.RemoteAddr, "err", err)
		notFound(w, r)
		return
	}
	defer f.Close()

	h := w.Header()
	if sum := s.sidecarSHA256(name, fi); sum != nil {
		h.Set("ETag", `"sha256-`+hex.EncodeToString(sum)+`"`)
		h.Set("Digest", "SHA-256="+base64.StdEncoding.EncodeToString(sum))
		h.Set("X-Checksum-Sha256", hex.EncodeToString(sum))
	} else {
		h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	}
	// Set, so that ServeContent neither guesses from the name nor reads
	// the file to sniff it.
	h.Set("Content-Type", "application/octet-stream")
	// Artifacts are replaced in place under the same name: caches may keep
	// them but must revalidate (the ETag makes that cheap).
	h.Set("Cache-Control", "no-cache")
	s.log.Debug("artifact", "name", name, "remote", r.RemoteAddr, "method", r.Method, "range", r.Header.Get("Range"))
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// openArtifact opens name, a slash-separated path under ArtifactDir, as a
// regular file. The os.Root refuses any path, "..", absolute name or
// symlink that would leave ArtifactDir.
func (s *Server) openArtifact(name string) (*os.File, os.FileInfo, error) {
	if !fs.ValidPath(name) || name == "." || strings.Contains(name, `\`) {
		return nil, nil, fs.ErrNotExist
	}
	return openRegular(s.root, name)
}

// openRegular opens name under root if it is a regular file. O_NONBLOCK
// keeps a FIFO put there from blocking the open; Linux ignores it for
// regular files.
func openRegular(root *os.Root, name string) (*os.File, os.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, errNotRegular)
	}
	return f, fi, nil
}

// sidecarSHA256 returns the digest in "<name>.sha256" (sha256sum's format:
// 64 hex digits, optionally followed by a file name), or nil if there is
// none. A sidecar older than the file it describes is stale (the file was
// replaced and the sum not) and is ignored: a wrong sum would make a
// strong ETag lie.
func (s *Server) sidecarSHA256(name string, fi os.FileInfo) []byte {
	f, sfi, err := openRegular(s.root, name+".sha256")
	if err != nil {
		return nil
	}
	defer f.Close()
	if sfi.ModTime().Before(fi.ModTime()) {
		s.log.Warn("artifact: ignoring sha256 sidecar older than its file", "name", name)
		return nil
	}
	buf := make([]byte, 512)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil
	}
	fields := strings.Fields(string(buf[:n]))
	if len(fields) == 0 {
		return nil
	}
	sum, err := hex.DecodeString(fields[0])
	if err != nil || len(sum) != 32 {
		s.log.Warn("artifact: ignoring malformed sha256 sidecar", "name", name)
		return nil
	}
	return sum
}
