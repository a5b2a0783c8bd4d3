package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/httpserve"
)

// Artifacts is this node's artifact store and its replication
// (*artifacts.Node).
type Artifacts interface {
	// Store is this node's store: what it serves.
	Store() *artifact.Store
	// Self is the id this node holds artifacts under.
	Self() string
	// Upload stores an artifact on this node and records it with meta
	// (name, description, type, CreatedBy), through the leader.
	Upload(ctx context.Context, r io.Reader, want artifact.Digest, size int64, meta store.Artifact) (*store.Artifact, error)
	// Transfer is the fetch under way on this node, if any.
	Transfer() (artifact.Transfer, bool)
	// Problem is what keeps this node from fetching an artifact, if
	// anything.
	Problem(d artifact.Digest) string
	// Sent counts bytes of an artifact sent to a site.
	Sent(site string, d artifact.Digest, bytes int64)
}

// artifactView is an artifact as the API shows it: the wire type
// central's client reads, written once.
type artifactView = client.Artifact

// artifactState is an artifact's state at central: present once a node
// holds it, fetching while the leader fetches its URL, else missing.
func artifactState(a *store.Artifact) string {
	switch {
	case len(a.Nodes) > 0:
		return "present"
	case a.Source.URL != "":
		return "fetching"
	}
	return "missing"
}

// viewArtifact is a as the API shows it, with the images that name it
// (uses) and the fetch of it under way here, if any. A registered URL is
// shown without its query (RedactURL), which may hold a credential.
func (s *Server) viewArtifact(a *store.Artifact, uses []store.ArtifactUse) artifactView {
	v := artifactView{SHA256: string(a.Digest), Size: a.Size, Name: a.Name, Description: a.Description, Type: a.Type,
		Source:    client.ArtifactSource{Upload: a.Source.Upload},
		CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy, State: artifactState(a), Nodes: a.Nodes, Sites: []client.ArtifactSite{}}
	if a.Source.URL != "" {
		v.Source.URL = store.RedactURL(a.Source.URL)
	}
	if v.Nodes == nil {
		v.Nodes = []string{}
	}
	if s.artifacts != nil {
		if t, ok := s.artifacts.Transfer(); ok && t.Digest == a.Digest {
			v.Progress = &client.ArtifactProgress{Node: s.artifacts.Self(), Source: t.Source, HeldBytes: t.Held, SizeBytes: t.Size}
		}
		if len(a.Nodes) == 0 {
			v.Error = s.artifacts.Problem(a.Digest)
		}
	}
	bySite := map[string]*client.ArtifactSite{}
	site := func(id string) *client.ArtifactSite {
		if bySite[id] == nil {
			bySite[id] = &client.ArtifactSite{Site: id}
		}
		return bySite[id]
	}
	for _, u := range uses {
		if st := site(u.Site); !slices.Contains(st.Images, u.Image) {
			st.Images = append(st.Images, u.Image)
		}
	}
	for id, n := range a.SentBytes {
		site(id).SentBytes = n
	}
	for _, id := range slices.Sorted(maps.Keys(bySite)) {
		v.Sites = append(v.Sites, *bySite[id])
	}
	return v
}

// digestOf reads the route's {sha256} ("<hex>" or "sha256:<hex>"); a
// string that is no digest names no artifact (404).
func digestOf(r *http.Request) (artifact.Digest, error) {
	d, err := artifact.ParseDigest(r.PathValue("sha256"))
	if err != nil {
		return "", errs.NotFound("artifact", r.PathValue("sha256"))
	}
	return d, nil
}

// errNoArtifacts answers on a central without an artifact store.
var errNoArtifacts = &errs.Error{Code: httpapi.CodeUnavailable, Message: "this central node keeps no artifacts"}

// uploadArtifact stores the request body as an artifact on this node
// and records it: ?sha256= (verified: bytes that hash otherwise are
// refused and nothing is kept), ?name=, ?description=, ?type=. The body
// is streamed to disk, never held whole.
func (s *Server) uploadArtifact(w http.ResponseWriter, r *http.Request) {
	if s.artifacts == nil {
		s.writeError(w, r, errNoArtifacts)
		return
	}
	q := r.URL.Query()
	meta := store.Artifact{Name: q.Get("name"), Description: q.Get("description"), Type: q.Get("type"), CreatedBy: caller(r)}
	if err := store.CheckArtifactMeta(meta.Name, meta.Description, meta.Type); err != nil {
		s.writeError(w, r, err)
		return
	}
	var want artifact.Digest
	if v := q.Get("sha256"); v != "" {
		d, err := artifact.ParseDigest(v)
		if err != nil {
			s.writeError(w, r, errs.Invalid("sha256", "%q is not a sha256 digest (64 hexadecimal digits)", v))
			return
		}
		want = d
	}
	if r.ContentLength == 0 {
		s.writeError(w, r, errs.Invalid("body", "is empty: send the artifact's bytes (Content-Length, or chunked)"))
		return
	}
	rec, err := s.artifacts.Upload(r.Context(), r.Body, want, r.ContentLength, meta)
	if err != nil {
		s.writeError(w, r, uploadError(r, err))
		return
	}
	out, err := s.viewArtifacts(rec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, out[0])
}

// uploadError is the API's answer to an upload that failed.
func uploadError(r *http.Request, err error) error {
	var corrupt *artifact.CorruptError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &corrupt):
		return errs.Invalid("sha256", "the %d bytes uploaded hash to sha256:%s, not %s: nothing was stored", corrupt.Size, corrupt.Got, corrupt.Want.Ref())
	case errors.As(err, &tooLarge):
		return &errs.Error{Code: httpapi.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than the limit of %d bytes (max_artifact_size)", tooLarge.Limit)}
	case errors.Is(err, httpserve.ErrBodyTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return &errs.Error{Code: httpapi.CodeTimeout, Field: "body", Message: "stopped arriving: nothing was stored"}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, artifact.ErrTooLarge):
		return errs.Invalid("body", "ended before its Content-Length, or went past it: nothing was stored")
	case errors.Is(err, artifact.ErrBadDigest):
		return errs.Invalid("sha256", "is not a sha256 digest (64 hexadecimal digits)")
	case r.Context().Err() != nil:
		return &errs.Error{Code: errs.CodeInvalid, Field: "body", Message: "the upload was cut: nothing was stored"}
	}
	return err
}

// registerArtifact registers an upstream URL: the leader fetches it once
// and verifies it, and every node copies it. The answer is the record,
// fetching until a node holds it.
func (s *Server) registerArtifact(w http.ResponseWriter, r *http.Request) {
	var req client.RegisterArtifactRequest
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := artifact.ParseDigest(req.SHA256)
	if err != nil {
		s.writeError(w, r, errs.Invalid("sha256", "is required: the artifact's sha256 (64 hexadecimal digits), which central checks"))
		return
	}
	if err := store.CheckArtifactMeta(req.Name, req.Description, req.Type); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := &store.Artifact{Digest: d, Size: req.Size, Name: req.Name, Description: req.Description, Type: req.Type,
		Source: store.ArtifactSource{URL: req.URL}}
	rec, err := s.db.RegisterArtifact(caller(r), a)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("artifact registered", "sha256", d, "url", store.RedactURL(req.URL), "size", req.Size, "by", caller(r))
	httpapi.WriteJSON(w, http.StatusAccepted, s.viewArtifact(rec, nil))
}

// viewArtifacts shows recs with the images that name each.
func (s *Server) viewArtifacts(recs ...*store.Artifact) ([]artifactView, error) {
	uses, err := s.db.ArtifactUses()
	if err != nil {
		return nil, err
	}
	out := make([]artifactView, 0, len(recs))
	for _, a := range recs {
		out = append(out, s.viewArtifact(a, uses[a.Digest]))
	}
	return out, nil
}

func (s *Server) listArtifacts(w http.ResponseWriter, r *http.Request) {
	recs, err := s.db.Artifacts()
	var out []artifactView
	if err == nil {
		out, err = s.viewArtifacts(recs...)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"artifacts": out})
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	d, err := digestOf(r)
	var a *store.Artifact
	if err == nil {
		a, err = s.db.Artifact(d)
	}
	var out []artifactView
	if err == nil {
		out, err = s.viewArtifacts(a)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out[0])
}

// deleteArtifact deletes an artifact from the catalogue (every node then
// removes its copy); refused while a site's image names it.
func (s *Server) deleteArtifact(w http.ResponseWriter, r *http.Request) {
	d, err := digestOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.db.DeleteArtifact(caller(r), d); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("artifact deleted", "sha256", d, "by", caller(r))
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sha256": d, "deleted": true})
}

// artifactContent answers an artifact's bytes from this node's store,
// with Range; a node that does not hold it yet answers 503 with
// Retry-After.
func (s *Server) artifactContent(w http.ResponseWriter, r *http.Request) {
	d, err := digestOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.db.Artifact(d); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveArtifact(w, r, d, nil)
}

// serveArtifact answers d from this node's store, with Range, passing
// each byte written to count (if not nil); 503 with Retry-After if this
// node does not hold it yet.
func (s *Server) serveArtifact(w http.ResponseWriter, r *http.Request, d artifact.Digest, count func(int64)) {
	if s.artifacts == nil {
		s.writeError(w, r, errNoArtifacts)
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	err := s.artifacts.Store().Serve(cw, r, d)
	if count != nil && cw.n > 0 {
		count(cw.n)
	}
	if errors.Is(err, artifact.ErrNotFound) {
		w.Header().Set("Retry-After", retryArtifact)
		s.writeError(w, r, &errs.Error{Code: httpapi.CodeUnavailable,
			Message: "this central node does not hold artifact " + d.Ref() + " yet: it is being copied; retry"})
	}
}

// retryArtifact is the Retry-After, in seconds, of an artifact a node
// does not hold yet.
const retryArtifact = "2"

// countingWriter counts the bytes of a response body written, sendfile's
// included.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps the connection's ReadFrom (sendfile) in the path.
func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, src)
	}
	c.n += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
