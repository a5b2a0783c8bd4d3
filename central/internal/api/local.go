package api

import (
	"net/http"
	"path"
	"strings"
)

// IsUpload reports whether r is an artifact's upload (POST
// /v1/artifacts): a body of up to max_artifact_size that may take long to
// arrive, where every other route takes a small JSON body (the server's
// httpserve.Shape).
func IsUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/v1/artifacts"
}

// Local reports whether every node of a replicated central serves r
// itself, rather than send it on to the leader: an upload (its bytes stay
// on the node that received them, and the others copy them from it), the
// downloads of artifacts (from this node's store), and /metrics (this
// node's). Nothing under /internal/ is sent on either: there, the
// leader's Raft port would take the request as this node's own call (the
// API has no such route: it answers 404).
func Local(r *http.Request) bool {
	p := r.URL.Path
	if p == "/metrics" || strings.HasPrefix(path.Clean("/"+p), "/internal") || IsUpload(r) {
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	parts := strings.Split(p, "/")
	switch {
	case len(parts) == 5 && parts[1] == "v1" && parts[2] == "artifacts" && parts[4] == "content":
		return true
	case len(parts) == 6 && parts[1] == "v1" && parts[2] == "sites" && parts[4] == "artifacts":
		return true
	}
	return false
}
