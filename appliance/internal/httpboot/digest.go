package httpboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
)

// Peers finds where the site's other nodes serve an artifact this node
// does not hold (package artifacts implements it, from the artifact's
// record and the members' Raft addresses).
type Peers interface {
	// ArtifactPeers returns the other nodes recorded as holding d, in
	// the order to try them: their internal route's URL and the client
	// (the Raft port's mutual TLS) that reaches it.
	ArtifactPeers(d artifact.Digest) []artifact.Source
}

// peerAnswer bounds the wait for a peer's answer to a proxied request.
const peerAnswer = 10 * time.Second

// proxiedHeaders are the headers of a peer's answer passed on to the
// machine.
var proxiedHeaders = []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Digest",
	"X-Checksum-Sha256", "Cache-Control", "Last-Modified"}

// conditionalHeaders are the headers of a machine's request passed on to
// the peer.
var conditionalHeaders = []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since"}

// serveDigest serves GET and HEAD /artifacts/sha256/{hex}: from this
// node's store (Range, the digest as a strong ETag, sendfile), else
// streamed from a peer that holds it, so that any node of the site
// serves any artifact present at the site; 404 if none does. Only whole,
// verified artifacts are served: a store publishes a digest only once
// its bytes hashed to it.
func (s *Server) serveDigest(w http.ResponseWriter, r *http.Request) {
	d, err := artifact.ParseDigest(r.PathValue("hex"))
	if err != nil || string(d) != r.PathValue("hex") {
		http.Error(w, "not an artifact: want /artifacts/sha256/ and 64 lowercase hexadecimal digits", http.StatusNotFound)
		return
	}
	if s.store != nil {
		if err := s.store.Serve(w, r, d); !errors.Is(err, artifact.ErrNotFound) {
			return
		}
	}
	if s.peers != nil {
		for _, src := range s.peers.ArtifactPeers(d) {
			if s.proxy(w, r, d, src) {
				return
			}
		}
	}
	s.log.Info("artifact: no node of the site holds it", "sha256", d, "remote", r.RemoteAddr)
	http.Error(w, "artifact "+d.Ref()+" is not at the site: no node holds it (yet)", http.StatusNotFound)
}

// proxy answers r with src's answer for d and reports whether it did; a
// peer that does not hold d, or cannot be reached, answers nothing, and
// the next is tried. Once the status is sent, the body is streamed as
// it comes: a transfer that breaks ends the response short, and the
// machine resumes with a Range.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, d artifact.Digest, src artifact.Source) bool {
	// A peer that does not answer within peerAnswer is passed over; one
	// that answered streams for as long as the machine reads.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	late := time.AfterFunc(s.peerAnswer, cancel)
	defer late.Stop()
	req, err := http.NewRequestWithContext(ctx, r.Method, src.URL, nil)
	if err != nil {
		return false
	}
	for _, h := range conditionalHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	c := src.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil || !late.Stop() {
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("no answer within %v", s.peerAnswer)
		}
		s.log.Warn("artifact: peer unreachable", "sha256", d, "peer", src.Name, "err", err)
		return false
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusNotModified, http.StatusRequestedRangeNotSatisfiable:
	default:
		s.log.Debug("artifact: peer does not serve it", "sha256", d, "peer", src.Name, "status", resp.Status)
		return false
	}
	for _, h := range proxiedHeaders {
		if v := resp.Header.Values(h); len(v) > 0 {
			w.Header()[h] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	proxied.Inc()
	if r.Method == http.MethodHead {
		return true
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil && r.Context().Err() == nil {
		s.log.Warn("artifact: proxy from peer broke", "sha256", d, "peer", src.Name, "bytes", n, "err", err)
	}
	s.log.Debug("artifact: proxied from peer", "sha256", d, "peer", src.Name, "bytes", n, "range", r.Header.Get("Range"),
		"remote", r.RemoteAddr, "status", resp.StatusCode)
	return true
}

// digestRef returns the URL and name of an installer's kernel or initrd
// given as "sha256:<hex>" (the boot service serves it by digest), and
// whether ref is one.
func digestRef(base, ref string) (u, name string, ok bool) {
	d, ok := store.DigestRef(ref)
	if !ok {
		return "", "", false
	}
	return base + "/artifacts/sha256/" + d, d, true
}
