package api

import (
	"net/http"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/httpapi"
)

// siteView is a site as the API shows it (never its credential's hash):
// the wire type central's client reads, written once.
type siteView = client.Site

func (s *Server) view(site *store.Site) siteView {
	v := siteView{ID: site.ID, Name: site.Name, CreatedAt: site.CreatedAt, Sync: client.SyncStatus{
		LastSeen: site.LastSeen, LatestRevision: site.Revision, AckedRevision: site.AckedRevision,
		StoredSeq: site.StoredSeq,
	}, Artifacts: client.SiteArtifacts{SentBytes: site.ArtifactSentBytes}}
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
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	cred, hash := store.NewSecret()
	site, err := s.db.CreateSite(req.ID, req.Name, hash)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("site created", "site", site.ID)
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"site": s.view(site), "credential": cred})
}

func (s *Server) listSites(w http.ResponseWriter, r *http.Request) {
	sites, err := s.db.Sites()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]siteView, 0, len(sites))
	for _, site := range sites {
		out = append(out, s.view(site))
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
