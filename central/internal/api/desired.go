package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/syncproto"
)

// putItem puts a machine, image or template into the site's desired
// state. The object must validate as its syncproto type; it is passed to
// the site as the operator wrote it (fields central does not know
// included: the site reads them).
func (s *Server) putItem(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var obj json.RawMessage
		if err := decodeBody(r, &obj, false); err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(obj) == 0 || obj[0] != '{' {
			s.writeError(w, r, errs.Invalid("body", "must be a JSON object"))
			return
		}
		if _, err := syncproto.DecodeObject(kind, r.PathValue("key"), obj); err != nil {
			s.writeError(w, r, objectError(err))
			return
		}
		if kind == store.KindImage {
			obj = s.withArtifactSize(obj)
		}
		rev, err := s.db.PutDesiredBy(caller(r), r.PathValue("site"), kind, r.PathValue("key"), obj)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"kind": kind, "key": r.PathValue("key"), "object": shown(kind, obj), "revision": rev})
	}
}

// caller is the name of the request's token, which its changes are
// recorded under.
func caller(r *http.Request) string {
	c, _ := httpapi.CallerOf(r.Context())
	return c.Name
}

// listRevisions answers the site's revisions after ?since= (at most
// ?limit=), each with who made it; a site's revisions older than the
// latest kept ones come as one full snapshot. Secrets are shown as
// objects are (shown).
func (s *Server) listRevisions(w http.ResponseWriter, r *http.Request) {
	since, limit, err := httpapi.PageQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	revs, err := s.db.NextRevisions(r.PathValue("site"), since, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if revs == nil {
		revs = []*store.Revision{}
	}
	for _, rev := range revs {
		for i, c := range rev.Changes {
			if c.Object != nil {
				rev.Changes[i].Object = shown(c.Kind, c.Object)
			}
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"revisions": revs})
}

// objectError is a syncproto object's refusal as the API's: the same
// field, the message without syncproto's "kind.field: " prefix.
func objectError(err error) error {
	e, ok := err.(*syncproto.Error)
	if !ok {
		return err
	}
	msg := e.Message
	if _, rest, ok := strings.Cut(msg, ": "); ok {
		msg = rest
	}
	return errs.Invalid(e.Field, "%s", msg)
}

func (s *Server) deleteItem(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rev, err := s.db.DeleteDesiredBy(caller(r), r.PathValue("site"), kind, r.PathValue("key"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"kind": kind, "key": r.PathValue("key"), "deleted": true, "revision": rev})
	}
}

func (s *Server) getItem(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		obj, err := s.db.Desired(r.PathValue("site"), kind, r.PathValue("key"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, shown(kind, obj))
	}
}

func (s *Server) listItems(kind, plural string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		items, err := s.db.ListDesired(r.PathValue("site"), kind)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]json.RawMessage, 0, len(items))
		for _, it := range items {
			out = append(out, shown(kind, it.Object))
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{plural: out})
	}
}

// shown is an object as the API shows it: a machine's BMC password (which
// central passes to the site, where it is sealed) is never shown, only
// whether it is set.
func shown(kind string, obj json.RawMessage) json.RawMessage {
	if kind != store.KindMachine {
		return obj
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return obj
	}
	var bmc map[string]json.RawMessage
	if json.Unmarshal(m["bmc"], &bmc) != nil || bmc == nil {
		return obj
	}
	_, set := bmc["password"]
	if _, sealed := bmc[store.SealedPasswordField]; sealed {
		set = true
	}
	delete(bmc, "password")
	delete(bmc, "sealed_password")
	delete(bmc, store.SealedPasswordField)
	if set {
		bmc["password_set"] = json.RawMessage("true")
	}
	m["bmc"], _ = json.Marshal(bmc)
	out, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return out
}
