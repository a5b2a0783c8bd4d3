package api

import (
	"net/http"
	"strings"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// siteView is a site as the API shows it (never its credential's hash):
// the wire type central's client reads, written once.
type siteView = client.Site

func (s *Server) view(site *store.Site) siteView {
	v := siteView{ID: site.ID, Name: site.Name, CreatedAt: site.CreatedAt, Sync: client.SyncStatus{
		LastSeen: site.LastSeen, LatestRevision: site.Revision, AckedRevision: site.AckedRevision,
		StoredSeq: site.StoredSeq,
	}, Artifacts: client.SiteArtifacts{SentBytes: site.ArtifactSentBytes}, Labels: site.Labels}
	for _, r := range site.Lost {
		v.Sync.LostSeqs = append(v.Sync.LostSeqs, client.SeqRange{First: r.First, Last: r.Last})
	}
	var st hub.Status
	if s.hub != nil {
		st = s.hub.Status(site.ID)
	}
	if st.Connected {
		v.Sync.Connected, v.Sync.ConnectedSince, v.Sync.Remote = true, st.Since, st.Remote
		if st.LastHeard.After(v.Sync.LastSeen) {
			v.Sync.LastSeen = st.LastHeard
		}
	}
	return v
}

// createSite creates a site and answers its credential, the only time it
// is shown.
func (s *Server) createSite(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID     string            `json:"id"`
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	cred, hash := store.NewSecret()
	site, err := s.db.CreateSiteBy(caller(r), req.ID, req.Name, hash, req.Labels)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("site created", "site", site.ID)
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"site": s.view(site), "credential": cred})
}

// listSites lists the sites; ?label=key=value (repeated: all of them)
// lists those with the labels.
func (s *Server) listSites(w http.ResponseWriter, r *http.Request) {
	want, err := labelQuery(r.URL.Query()["label"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sites, err := s.db.Sites()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]siteView, 0, len(sites))
	for _, site := range sites {
		if want == nil || site.HasLabels(want) {
			out = append(out, s.view(site))
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sites": out})
}

func (s *Server) getSite(w http.ResponseWriter, r *http.Request) {
	site, err := s.db.Site(r.PathValue("site"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.view(site))
}

// labelQuery reads ?label=key=value filters, all of which a site must
// have; none is nil.
func labelQuery(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	want := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return nil, errs.Invalid("label", "%q is not key=value", v)
		}
		want[k] = val
	}
	return want, store.CheckLabels("label", want)
}

// setSiteLabels replaces a site's labels: in the same change central
// places on the site the catalogue's images that now match it, and
// removes those that no longer do.
func (s *Server) setSiteLabels(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Labels map[string]string `json:"labels"`
	}
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	site, err := s.db.SetSiteLabels(caller(r), r.PathValue("site"), req.Labels)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("site labels set", "site", site.ID, "labels", len(site.Labels), "revision", site.Revision, "by", caller(r))
	httpapi.WriteJSON(w, http.StatusOK, s.view(site))
}
