package portal

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/syncproto"
)

type imageView struct {
	Name, Digest, Kind, By string
	Updated                time.Time
	Placement              store.Placement
	Holders                []holder
}

// holder is a site the image is placed on: Held once the site applied
// the revision that put it there (it then holds the digest, or fetches
// it before it installs a machine from it).
type holder struct {
	Site     string
	Revision uint64
	Held     bool
}

type imagesData struct {
	Images []imageView
}

// images serves the catalogue: each image's name, digest and placement,
// and which sites hold it; for an operator, the upload form.
func (s *Server) images(w http.ResponseWriter, r *http.Request) {
	cat, err := s.catalogue()
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	acked := map[string]uint64{}
	if sites, err := s.cfg.Fleet.Sites(); err == nil {
		for _, st := range sites {
			acked[st.ID] = st.Link.AckedRevision
		}
	}
	var d imagesData
	for _, c := range cat {
		v := imageView{Name: c.Name, Digest: string(c.Digest()), Placement: c.Placement, By: c.UpdatedBy, Updated: c.UpdatedAt}
		var img syncproto.Image
		if json.Unmarshal(c.Image, &img) == nil {
			v.Kind = img.Type
		}
		for _, site := range slices.Sorted(maps.Keys(c.Placed)) {
			rev := c.Placed[site]
			v.Holders = append(v.Holders, holder{Site: site, Revision: rev, Held: acked[site] >= rev})
		}
		d.Images = append(d.Images, v)
	}
	s.render(w, r, http.StatusOK, "images", "Images", d)
}

// catalogue is the catalogue's images, none without Desired.
func (s *Server) catalogue() ([]*store.CatalogueImage, error) {
	if s.cfg.Desired == nil {
		return nil, nil
	}
	return s.cfg.Desired.CatalogueImages()
}

// imageNames are the catalogue's names, for the order forms.
func (s *Server) imageNames() []string {
	cat, err := s.catalogue()
	if err != nil {
		s.log.Warn("read the catalogue", "err", err)
	}
	var out []string
	for _, c := range cat {
		out = append(out, c.Name)
	}
	return out
}

type templateView struct {
	Site, Name, Description string
	Actions                 []string
}

type templatesData struct {
	Site      string
	Sites     []string
	Templates []templateView
}

// templates serves each site's workflow templates (?site= one site's).
func (s *Server) templates(w http.ResponseWriter, r *http.Request) {
	sites, err := s.cfg.Fleet.Sites()
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := templatesData{Site: r.URL.Query().Get("site")}
	for _, st := range sites {
		d.Sites = append(d.Sites, st.ID)
		if d.Site != "" && st.ID != d.Site {
			continue
		}
		for _, t := range s.siteTemplates(st.ID) {
			v := templateView{Site: st.ID, Name: t.Name, Description: t.Description}
			for _, a := range t.Actions {
				v.Actions = append(v.Actions, a.Name+" ("+a.Type+")")
			}
			d.Templates = append(d.Templates, v)
		}
	}
	s.render(w, r, http.StatusOK, "templates", "Templates", d)
}

// siteTemplates are the templates of site's desired state.
func (s *Server) siteTemplates(site string) []syncproto.Template {
	if s.cfg.Desired == nil {
		return nil
	}
	items, err := s.cfg.Desired.ListDesired(site, store.KindTemplate)
	if err != nil {
		s.log.Warn("read a site's templates", "site", site, "err", err)
		return nil
	}
	var out []syncproto.Template
	for _, it := range items {
		var t syncproto.Template
		if json.Unmarshal(it.Object, &t) == nil {
			if t.Name == "" {
				t.Name = it.Key
			}
			out = append(out, t)
		}
	}
	return out
}

// templateNames are site's templates' names, for the order form.
func (s *Server) templateNames(site string) []string {
	var out []string
	for _, t := range s.siteTemplates(site) {
		out = append(out, t.Name)
	}
	return out
}

// sites serves every site with its link, labels and what its appliance
// reports.
func (s *Server) sites(w http.ResponseWriter, r *http.Request) {
	sites, err := s.cfg.Fleet.Sites()
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "sites", "Sites", struct{ Sites []*fleet.Site }{sites})
}
