package store

import (
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// Artifact is what the site knows of one content-addressed artifact (an
// OS image, an installer's kernel or initrd) by its SHA-256: which images
// point at it, which nodes hold it, and since when it has been needed or
// unneeded. Package site keeps the records in step with the images
// (every command that puts or deletes images) and with the nodes'
// reports (RecordArtifact, ForgetArtifact, ReportArtifact); package
// artifacts makes each node's disk follow them.
type Artifact struct {
	Meta
	// SHA256 is the artifact's digest, 64 lowercase hexadecimal digits:
	// its key.
	SHA256 string `json:"sha256"`
	// Size is its length in bytes, as an image declares it or the first
	// node that held it reported; 0 while unknown.
	Size int64 `json:"size_bytes,omitempty"`
	// Names are the images that point at it, sorted; none while it is
	// unreferenced.
	Names []string `json:"names,omitempty"`
	// Nodes are the nodes that hold it, with when each was recorded.
	Nodes map[string]time.Time `json:"nodes,omitempty"`
	// NeededSince is when an image first pointed at it.
	NeededSince time.Time `json:"needed_since"`
	// UnreferencedSince is when the last image pointing at it stopped
	// doing so; zero while an image does. After the site's grace period
	// nodes remove it.
	UnreferencedSince time.Time `json:"unreferenced_since,omitzero"`
	// Pull is the leader's latest report of its pull from past the
	// site, until a node holds it.
	Pull *ArtifactPull `json:"pull,omitempty"`
}

// ArtifactPull is a report of the leader's pull of an artifact from past
// the site (central, an upstream URL).
type ArtifactPull struct {
	Node   string `json:"node"`
	Source string `json:"source"`
	// Held and Size are the bytes received so far and the artifact's
	// size (0: unknown).
	Held int64 `json:"held_bytes"`
	Size int64 `json:"size_bytes,omitempty"`
	// Error is why the latest try failed or was thrown away (corrupt);
	// empty while it goes on.
	Error string    `json:"error,omitempty"`
	Time  time.Time `json:"time"`
}

// Percent is how much of the artifact has arrived, -1 when its size is
// unknown.
func (p *ArtifactPull) Percent() int {
	if p.Size <= 0 {
		return -1
	}
	return int(min(p.Held*100/p.Size, 100))
}

func (*Artifact) Kind() string   { return "artifact" }
func (a *Artifact) Key() string  { return a.SHA256 }
func (*Artifact) bucket() []byte { return bucketArtifacts }

// Validate checks the record on its own.
func (a *Artifact) Validate() error {
	if !ValidDigest(a.SHA256) {
		return errs.Invalid("sha256", "%q is not a SHA-256 in lowercase hexadecimal (64 digits)", a.SHA256)
	}
	if a.Size < 0 {
		return errs.Invalid("size_bytes", "must not be negative")
	}
	if !slices.IsSorted(a.Names) {
		return errs.Invalid("names", "must be sorted")
	}
	return nil
}

// Referenced reports whether an image points at the artifact.
func (a *Artifact) Referenced() bool { return a.UnreferencedSince.IsZero() }

// HeldBy reports whether node holds the artifact.
func (a *Artifact) HeldBy(node string) bool {
	_, ok := a.Nodes[node]
	return ok
}

// Holders are the nodes that hold the artifact, sorted.
func (a *Artifact) Holders() []string {
	out := make([]string, 0, len(a.Nodes))
	for n := range a.Nodes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// DigestPrefix is how an image's kernel or initrd names an artifact:
// "sha256:<hex>".
const DigestPrefix = "sha256:"

// ValidDigest reports whether s is a SHA-256 in lowercase hexadecimal.
func ValidDigest(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && strings.ToLower(s) == s
}

// DigestRef returns the digest a "sha256:<hex>" reference names (in
// either case), in lowercase, and whether ref is one.
func DigestRef(ref string) (string, bool) {
	if len(ref) < len(DigestPrefix) || !strings.EqualFold(ref[:len(DigestPrefix)], DigestPrefix) {
		return "", false
	}
	d := strings.ToLower(ref[len(DigestPrefix):])
	return d, ValidDigest(d)
}

// ArtifactGeneration changes whenever what a node's artifacts follow
// changes: an artifact record, or an image. The nodes' replicators wake
// when it moves rather than at every write of the store.
func (tx *Tx) ArtifactGeneration() uint64 {
	return readU64(tx.tx.Bucket(bucketMeta).Get(keyArtifactGen))
}

func (tx *Tx) bumpArtifactGen() error {
	return tx.tx.Bucket(bucketMeta).Put(keyArtifactGen, u64(tx.ArtifactGeneration()+1))
}
