package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
)

// CA is where the rotation of central's CA stands (as
// internal/pki.Generations): the generation node certificates are issued
// under, and, while a rotation is under way, the one before it. A store
// that records none (of release b482c18, or a central that never
// rotated) is at generation 1.
type CA struct {
	Generation uint64 `json:"generation"`
	// Previous is the generation a rotation under way replaces, still
	// trusted until it is finished; 0 when none is under way.
	Previous uint64 `json:"previous,omitempty"`
	// Time and By are when and by whom the last step was taken.
	Time time.Time `json:"time,omitzero"`
	By   string    `json:"by,omitempty"`
}

// The steps of a rotation of central's CA (RotateCA).
const (
	CABegin  = "begin"
	CAFinish = "finish"
)

// keyCA holds the CA record in bucketMeta.
var keyCA = []byte("ca")

// CA returns where the rotation of central's CA stands.
func (d *DB) CA() (CA, error) {
	var c CA
	err := d.view(func(tx *bolt.Tx) (err error) { c, err = readCA(tx); return err })
	return c, err
}

func readCA(tx *bolt.Tx) (CA, error) {
	c, err := get[CA](tx.Bucket(bucketMeta), keyCA)
	if err != nil || c == nil {
		return CA{Generation: 1}, err
	}
	return *c, nil
}

// RotateCA takes a step of a rotation of central's CA, by the actor by:
// begin makes the next generation current, the current one still
// trusted; finish, refused (naming them) until every member reports a
// certificate of the new generation, trusts it alone. It returns where
// the rotation stands.
func (d *DB) RotateCA(step, by string) (CA, error) {
	cur, err := d.CA()
	if err != nil {
		return CA{}, err
	}
	p := &rotateCAPayload{Step: step, Generation: cur.Generation, Time: d.now().UTC(), By: by}
	switch step {
	case CABegin:
		p.Generation++
	case CAFinish:
	default:
		return CA{}, errs.Invalid("step", "%q is not a step of a rotation: want %q or %q", step, CABegin, CAFinish)
	}
	if _, err := d.exec(cmdSetCAGeneration, p); err != nil {
		return CA{}, err
	}
	return d.CA()
}

// applySetCAGeneration takes a step of a rotation; see RotateCA.
func applySetCAGeneration(tx *txn, p *rotateCAPayload) (any, error) {
	cur, err := readCA(tx.Tx)
	if err != nil {
		return nil, err
	}
	next := CA{Generation: cur.Generation, Time: p.Time, By: p.By}
	switch p.Step {
	case CABegin:
		if cur.Previous != 0 {
			return nil, errs.Conflict("a rotation of central's CA to generation %d is under way: finish it first", cur.Generation)
		}
		if p.Generation != cur.Generation+1 {
			return nil, errs.Conflict("central's CA is at generation %d: a rotation goes to %d, not %d", cur.Generation, cur.Generation+1, p.Generation)
		}
		next.Generation, next.Previous = p.Generation, cur.Generation
	case CAFinish:
		if err := checkFinish(tx.Tx, cur, p.Generation); err != nil {
			return nil, err
		}
	default:
		return nil, errs.Invalid("step", "%q is not a step of a rotation: want %q or %q", p.Step, CABegin, CAFinish)
	}
	return next.Generation, put(tx.Bucket(bucketMeta), keyCA, &next)
}

// checkFinish refuses a finish of the rotation to gen from cur until
// every member reports a certificate of gen.
func checkFinish(tx *bolt.Tx, cur CA, gen uint64) error {
	switch {
	case cur.Previous == 0:
		return errs.Conflict("no rotation of central's CA is under way (generation %d): begin one first", cur.Generation)
	case gen != cur.Generation:
		return errs.Conflict("the rotation under way is to generation %d, not %d", cur.Generation, gen)
	}
	var behind []string
	err := tx.Bucket(bucketMembers).ForEach(func(k, _ []byte) error {
		m, err := get[Member](tx.Bucket(bucketMembers), k)
		if err == nil && m.Generation() != gen {
			behind = append(behind, fmt.Sprintf("%s (generation %d)", m.ID, m.Generation()))
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(behind) > 0 {
		slices.Sort(behind)
		return errs.Conflict("members have not renewed their certificates under generation %d: %s; start them, or remove them, and try again",
			gen, strings.Join(behind, ", "))
	}
	return nil
}
