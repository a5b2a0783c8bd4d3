package api

import (
	"maps"
	"net/http"
	"slices"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/syncproto"
)

// catalogueView is an image of the catalogue as the API shows it: the
// wire type central's client reads, written once.
type catalogueView = client.CatalogueImage

// viewCatalogue shows c with the sites it is placed on, each with the
// revision that put it there and whether the site acknowledged it. Whether
// a site holds the image's bytes is not known to central yet: a site does
// not report the artifacts it holds.
func (s *Server) viewCatalogue(c *store.CatalogueImage) (catalogueView, error) {
	v := catalogueView{Name: c.Name, SHA256: string(c.Digest()), Image: c.Image,
		Placement: client.Placement{Sites: c.Placement.Sites, SiteLabels: c.Placement.SiteLabels},
		Placed:    []client.PlacedSite{}, UpdatedAt: c.UpdatedAt, UpdatedBy: c.UpdatedBy}
	for _, id := range slices.Sorted(maps.Keys(c.Placed)) {
		site, err := s.db.Site(id)
		if err != nil {
			return v, err
		}
		rev := c.Placed[id]
		v.Placed = append(v.Placed, client.PlacedSite{Site: id, Revision: rev, Acked: site.AckedRevision >= rev})
	}
	return v, nil
}

// putCatalogueImage puts an image of the catalogue ({"image": a
// syncproto.Image, "sites": [...], "site_labels": {...}}) and places it
// on every matching site in the same change; refused (409, naming the
// site) where a site has its own image of that name.
func (s *Server) putCatalogueImage(w http.ResponseWriter, r *http.Request) {
	var req client.PutImageRequest
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	name := r.PathValue("name")
	if len(req.Image) == 0 || req.Image[0] != '{' {
		s.writeError(w, r, errs.Invalid("image", "is required: a JSON object, the image"))
		return
	}
	if _, err := syncproto.DecodeObject(store.KindImage, name, req.Image); err != nil {
		e := objectError(err)
		if pe, ok := errs.AsError(e); ok {
			pe.Field = "image." + pe.Field
		}
		s.writeError(w, r, e)
		return
	}
	where := store.Placement{Sites: req.Sites, SiteLabels: req.SiteLabels}
	c, err := s.db.PutCatalogueImage(caller(r), name, s.withArtifactSize(req.Image), where)
	if out, ok := s.answerCatalogue(w, r, c, err); ok {
		s.log.Info("catalogue image put", "image", name, "sha256", out.SHA256, "sites", len(out.Placed), "by", caller(r))
	}
}

// answerCatalogue answers c as the API shows it, or err, and reports
// whether it answered c.
func (s *Server) answerCatalogue(w http.ResponseWriter, r *http.Request, c *store.CatalogueImage, err error) (catalogueView, bool) {
	var out catalogueView
	if err == nil {
		out, err = s.viewCatalogue(c)
	}
	if err != nil {
		s.writeError(w, r, err)
		return out, false
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return out, true
}

func (s *Server) listCatalogue(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.CatalogueImages()
	out := make([]catalogueView, 0, len(list))
	for i := 0; err == nil && i < len(list); i++ {
		var v catalogueView
		v, err = s.viewCatalogue(list[i])
		out = append(out, v)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"images": out})
}

func (s *Server) getCatalogueImage(w http.ResponseWriter, r *http.Request) {
	c, err := s.db.CatalogueImage(r.PathValue("name"))
	s.answerCatalogue(w, r, c, err)
}

// deleteCatalogueImage deletes an image of the catalogue and removes it
// from every site it was placed on. The artifacts it named stay in the
// catalogue of artifacts until deleted there.
func (s *Server) deleteCatalogueImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.db.DeleteCatalogueImage(caller(r), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("catalogue image deleted", "image", name, "by", caller(r))
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"name": name, "deleted": true})
}
