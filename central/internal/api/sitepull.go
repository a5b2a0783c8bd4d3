package api

import (
	"net/http"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// SitePullPattern is the route a site pulls its artifacts from, with its
// own credential (Authorization: Bearer <credential>), not a token.
const SitePullPattern = "GET /v1/sites/{site}/artifacts/{sha256}"

// sitePull answers a site's pull of an artifact one of its desired
// images names (an OS image's sha256, an installer's "sha256:" kernel or
// initrd), from this node's store, with Range. The site proves itself
// with its credential: an unknown site and a wrong credential get the
// same 401. Any other digest is 404, whether central holds it or not. A
// node that does not hold it yet answers 503 with Retry-After. The bytes
// written are counted for the site.
func (s *Server) sitePull(w http.ResponseWriter, r *http.Request) {
	site := r.PathValue("site")
	if s.db.Authenticate(site, httpapi.Bearer(r)) == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="outpost central: a site's credential"`)
		httpapi.WriteError(w, &errs.Error{Code: httpapi.CodeUnauthorized,
			Message: "a site pulls its artifacts with its credential (Authorization: Bearer <credential>)"})
		return
	}
	notNamed := errs.NotFound("artifact of site "+site, r.PathValue("sha256"))
	d, err := artifact.ParseDigest(r.PathValue("sha256"))
	if err != nil {
		s.writeError(w, r, notNamed)
		return
	}
	named, err := s.db.SiteUses(site, d)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !named {
		s.writeError(w, r, notNamed)
		return
	}
	s.serveArtifact(w, r, d, func(n int64) {
		if s.artifacts != nil {
			s.artifacts.Sent(site, d, n)
		}
	})
}
