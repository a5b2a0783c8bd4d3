package api

import (
	"encoding/json"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/syncproto"
)

// withArtifactSize returns obj, an image, with its size_bytes filled in
// from central's catalogue when the image is an artifact central holds
// and the operator gave no size: the site then says how large an image
// an order waits for, and how far its pull has got, before any of it
// arrived. Any other object, or one with a size, is returned as it is
// (the store's apply refuses an image naming an artifact central does
// not hold).
func (s *Server) withArtifactSize(obj json.RawMessage) json.RawMessage {
	var img syncproto.Image
	if json.Unmarshal(obj, &img) != nil || img.Type == syncproto.ImageInstaller ||
		img.Size != 0 || img.URL != "" || img.File != "" || img.SHA256 == "" {
		return obj
	}
	d, err := artifact.ParseDigest(img.SHA256)
	if err != nil {
		return obj
	}
	rec, err := s.db.Artifact(d)
	if err != nil || rec.Size <= 0 {
		return obj
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(obj, &fields) != nil {
		return obj
	}
	fields["size_bytes"], _ = json.Marshal(rec.Size)
	out, err := json.Marshal(fields)
	if err != nil {
		return obj
	}
	return out
}
