package store

import "github.com/outposthq/outpost/internal/errs"

// CA is where the site's CA rotation stands (as internal/pki.Generations):
// the generation node certificates are issued under, and, while a
// rotation is under way, the one before it. It is kept beside the
// settings, under its own key; a store that has none (one of release
// b482c18, or a site that never rotated) is at generation 1.
type CA struct {
	Meta
	// Generation is the current generation.
	Generation uint64 `json:"generation"`
	// Previous is the generation a rotation under way replaces, still
	// trusted until it is finished; 0 when none is under way.
	Previous uint64 `json:"previous,omitempty"`
}

// caKey is the CA's key in the settings bucket.
const caKey = "ca"

func (*CA) Kind() string   { return "ca" }
func (*CA) Key() string    { return caKey }
func (*CA) bucket() []byte { return bucketSettings }

// Validate checks the record.
func (c *CA) Validate() error {
	if c.Generation == 0 {
		return errs.Invalid("generation", "must be at least 1")
	}
	if c.Previous != 0 && c.Previous+1 != c.Generation {
		return errs.Invalid("previous", "must be the generation before %d, or 0", c.Generation)
	}
	return nil
}

// CA returns where the site's CA rotation stands: generation 1 if the
// store records none.
func (tx *Tx) CA() (*CA, error) {
	c, err := Get[CA](tx, caKey)
	if isNotFound(err) {
		return &CA{Generation: 1}, nil
	}
	return c, err
}
