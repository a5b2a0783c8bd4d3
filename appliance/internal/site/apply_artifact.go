package site

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Artifacts. An image is its sha256: the site keeps one record per digest
// an image points at (store.Artifact), reconciled with the images by
// every command that puts or deletes one, at the command's time. Each
// node's replicator (package artifacts) makes its disk follow the
// records and reports what it holds: RecordArtifact when it holds a
// digest, verified; ForgetArtifact when it removed one; the leader's
// ReportArtifact on a pull from past the site. The first node to hold
// a digest starts the orders that waited for it (apply_wait.go).

// applyPutImage stores an image and reconciles the artifact records.
func applyPutImage(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Put[store.Image]
	command.MustDecode(payload, &req, index)
	obj, err := putObject(tx, &req, index)
	if err != nil {
		return nil, err
	}
	return obj, imagesChanged(tx, store.Write{Index: index, Time: req.Time, By: req.By})
}

// applyDeleteImage removes an image and reconciles the artifact records.
func applyDeleteImage(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Delete
	command.MustDecode(payload, &req, index)
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafeDelete(&store.Image{}, req.Key, req.Expect); err != nil {
		return nil, err
	}
	if err := appendEvents(tx, req.Events, wr); err != nil {
		return nil, err
	}
	return nil, imagesChanged(tx, wr)
}

// imagesChanged follows a change of the images: the artifact records,
// then the orders that wait for artifacts.
func imagesChanged(tx *store.Tx, wr store.Write) error {
	if err := reconcileArtifacts(tx, wr); err != nil {
		return err
	}
	return reviewWaiting(tx, wr)
}

// reference is what the images say of one digest.
type reference struct {
	names []string
	size  int64
}

// referenced returns every digest an image points at (store.Image.Artifacts).
func referenced(tx *store.Tx) (map[string]*reference, error) {
	images, err := store.List[store.Image](tx)
	if err != nil {
		return nil, err
	}
	out := map[string]*reference{}
	for _, img := range images {
		for _, a := range img.Artifacts() {
			r := out[a.SHA256]
			if r == nil {
				r = &reference{}
				out[a.SHA256] = r
			}
			if !slices.Contains(r.names, img.Name) {
				r.names = append(r.names, img.Name) // images come in name order
			}
			if r.size == 0 {
				r.size = a.Size
			}
		}
	}
	return out, nil
}

// reconcileArtifacts makes the records follow the images: a digest newly
// pointed at gets a record that no node holds (missing, at once), one
// no image points at any more is unreferenced from now (or deleted, if
// no node holds it), one pointed at again is referenced again. Records
// that do not change are not written.
func reconcileArtifacts(tx *store.Tx, wr store.Write) error {
	refs, err := referenced(tx)
	if err != nil {
		return err
	}
	records, err := store.List[store.Artifact](tx)
	if err != nil {
		return err
	}
	for _, rec := range records {
		r, ok := refs[rec.SHA256]
		delete(refs, rec.SHA256)
		if err := reconcileRecord(tx, rec, r, ok, wr); err != nil {
			return err
		}
	}
	for _, d := range sortedKeys(refs) {
		rec := &store.Artifact{SHA256: d, Size: refs[d].size, Names: refs[d].names, NeededSince: wr.Time}
		if err := tx.UnsafePut(rec, wr); err != nil {
			return err
		}
	}
	return nil
}

// reconcileRecord brings one existing record in step with r, what the
// images say of it (ok false: nothing).
func reconcileRecord(tx *store.Tx, rec *store.Artifact, r *reference, ok bool, wr store.Write) error {
	if !ok {
		if !rec.Referenced() {
			return nil
		}
		if len(rec.Nodes) == 0 {
			return tx.UnsafeDelete(rec, rec.SHA256, 0)
		}
		rec.Names, rec.UnreferencedSince, rec.Pull = nil, wr.Time, nil
		return tx.UnsafePut(rec, wr)
	}
	size := rec.Size
	if size == 0 {
		size = r.size
	}
	if rec.Referenced() && slices.Equal(rec.Names, r.names) && size == rec.Size {
		return nil
	}
	if !rec.Referenced() {
		rec.NeededSince = wr.Time
	}
	rec.Names, rec.Size, rec.UnreferencedSince = r.names, size, time.Time{}
	return tx.UnsafePut(rec, wr)
}

// applyRecordArtifact records that a node holds an artifact, verified.
// The first node to hold a referenced digest makes it present at the
// site (artifact.present), and starts the orders that waited for it;
// each node after copies it (artifact.copied). A node recorded already
// changes nothing. A digest no record names (no image points at it, and
// no node holds it) is refused: the node will remove it.
func applyRecordArtifact(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req ArtifactHeld
	command.MustDecode(payload, &req, index)
	if err := req.validate(); err != nil {
		return nil, err
	}
	rec, err := recordOf(tx, req.SHA256)
	switch {
	case err != nil:
		return nil, err
	case rec.Size > 0 && req.Size > 0 && req.Size != rec.Size:
		return nil, errs.Invalid("size_bytes", "node %s holds %d bytes of artifact %s, which is %d bytes", req.Node, req.Size, ref(req.SHA256), rec.Size)
	case rec.HeldBy(req.Node):
		return rec, nil
	}
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	first := len(rec.Nodes) == 0
	if rec.Size == 0 {
		rec.Size = req.Size
	}
	if rec.Nodes == nil {
		rec.Nodes = map[string]time.Time{}
	}
	rec.Nodes[req.Node] = req.Time
	if first {
		rec.Pull = nil
	}
	if err := tx.UnsafePut(rec, wr); err != nil {
		return nil, err
	}
	if !rec.Referenced() {
		return rec, nil
	}
	if err := event(tx, wr, heldEvent(rec, req.Node, first)); err != nil {
		return nil, err
	}
	if first {
		return rec, reviewWaiting(tx, wr)
	}
	return rec, nil
}

// recordOf returns the record of digest d, refusing one no record names:
// no image points at it, and no node holds it.
func recordOf(tx *store.Tx, d string) (*store.Artifact, error) {
	rec, err := store.Get[store.Artifact](tx, d)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Conflict("no image points at artifact %s", ref(d))
	}
	return rec, err
}

// heldEvent records that node holds rec: present at the site (first)
// or copied to one more node.
func heldEvent(rec *store.Artifact, node string, first bool) store.Event {
	e := store.Event{Kind: "artifact.copied", Fields: artifactFields(rec, node)}
	if first {
		e.Kind = "artifact.present"
		e.Message = fmt.Sprintf("artifact %s (%s, %s) is at the site: node %s holds it", ref(rec.SHA256), joinNames(rec.Names), sizeText(rec.Size), node)
	} else {
		e.Message = fmt.Sprintf("node %s holds artifact %s (%s) too: %d nodes hold it", node, ref(rec.SHA256), joinNames(rec.Names), len(rec.Nodes))
	}
	return e
}

// applyForgetArtifact records that a node removed an artifact. A record
// no image points at that no node holds any more is deleted. Forgetting
// what the site does not record for the node changes nothing.
func applyForgetArtifact(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req ArtifactHeld
	command.MustDecode(payload, &req, index)
	if err := req.validate(); err != nil {
		return nil, err
	}
	rec, err := store.Get[store.Artifact](tx, req.SHA256)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !rec.HeldBy(req.Node) {
		return rec, nil
	}
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	delete(rec.Nodes, req.Node)
	if !rec.Referenced() && len(rec.Nodes) == 0 {
		err = tx.UnsafeDelete(rec, rec.SHA256, 0)
	} else {
		err = tx.UnsafePut(rec, wr)
	}
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("node %s removed artifact %s: no image has pointed at it since %s", req.Node, ref(rec.SHA256), rec.UnreferencedSince.Format("2006-01-02 15:04:05Z07:00"))
	if rec.Referenced() {
		msg = fmt.Sprintf("node %s no longer holds artifact %s (%s): %d nodes hold it", req.Node, ref(rec.SHA256), joinNames(rec.Names), len(rec.Nodes))
	}
	return rec, event(tx, wr, store.Event{Kind: "artifact.removed", Message: msg, Fields: artifactFields(rec, req.Node)})
}

// validate checks a node's report of what it holds.
func (h *ArtifactHeld) validate() error {
	if h.Node == "" {
		return errs.Invalid("node", "is required")
	}
	if !store.ValidDigest(h.SHA256) {
		return errs.Invalid("sha256", "%q is not a SHA-256 in lowercase hexadecimal (64 digits)", clip(h.SHA256))
	}
	if h.Size < 0 {
		return errs.Invalid("size_bytes", "must not be negative")
	}
	return nil
}

// artifactFields are the fields of an artifact's events.
func artifactFields(rec *store.Artifact, node string) map[string]string {
	f := map[string]string{"sha256": rec.SHA256, "node": node, "nodes": fmt.Sprint(len(rec.Nodes))}
	if len(rec.Names) > 0 {
		f["images"] = strings.Join(rec.Names, ",")
	}
	if rec.Size > 0 {
		f["size_bytes"] = fmt.Sprint(rec.Size)
	}
	return f
}

// ref writes a digest as a short reference for messages.
func ref(d string) string {
	if len(d) > 12 {
		return store.DigestPrefix + d[:12] + "…"
	}
	return store.DigestPrefix + d
}

// sizeText writes a size for people: "1.0 GiB", "unknown size".
func sizeText(n int64) string {
	const unit = 1024
	if n <= 0 {
		return "size unknown"
	}
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// clip cuts what a client sent to a length fit for a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
