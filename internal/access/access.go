// Package access is who may do what through the APIs of both sides of
// Outpost: the roles a token carries and the grant a token record holds
// (a role and an optional expiry).
//
// Roles are ordered: an admin may do everything an operator may, and an
// operator everything a viewer may.
//
//   - viewer reads, and nothing else (secrets stay hidden from every role);
//   - operator also changes what a site provisions: machines, subnets,
//     images, templates, orders, power, workflows, the events they post;
//   - admin also manages tokens, cluster membership, settings and
//     anything that hands out or touches a secret.
//
// A token record of a release before roles (b482c18 and earlier) has no
// role: every token of those releases was an admin, and it stays one.
package access

import (
	"fmt"
	"regexp"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// Role is what a token may do.
type Role string

// The roles, from the least to the most allowed.
const (
	Viewer   Role = "viewer"
	Operator Role = "operator"
	Admin    Role = "admin"
)

// Roles lists the roles from the least to the most allowed.
var Roles = []Role{Viewer, Operator, Admin}

// rank orders the roles; 0 for a string that is no role.
func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Operator:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a holder of r may do what needs the role need.
// Nothing allows, or is allowed by, a string that is no role.
func (r Role) Allows(need Role) bool { return need.Valid() && r.rank() >= need.rank() }

// ParseRole reads a role by its name, naming field when it is no role.
func ParseRole(field, s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	if s == "" {
		return "", errs.Invalid(field, "is required: %s", roleNames())
	}
	return "", errs.Invalid(field, "%q is not a role: %s", s, roleNames())
}

func roleNames() string { return fmt.Sprintf("%s, %s or %s", Viewer, Operator, Admin) }

// Grant is what a token record allows: a role, until an optional expiry.
// Token records of both sides embed it, so its fields are theirs in JSON.
type Grant struct {
	// Role is the token's role; empty in a record of a release before
	// roles, which is an admin (Effective).
	Role Role `json:"role,omitempty"`
	// ExpiresAt is when the token stops opening anything; zero for never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Effective is the role the grant gives: its Role, or Admin for a record
// of a release before roles.
func (g Grant) Effective() Role {
	if g.Role == "" {
		return Admin
	}
	return g.Role
}

// Expired reports whether the grant has expired at now.
func (g Grant) Expired(now time.Time) bool {
	return !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt)
}

// Validate checks a grant for a new token: a role is required.
func (g Grant) Validate() error {
	if _, err := ParseRole("role", string(g.Role)); err != nil {
		return err
	}
	return nil
}

// The actors of the changes nobody typed. A change records who made it:
// the name of the token it came with, or the part of the system that made
// it, "site" or "central", or "site/<part>" (the site's DHCP server, job
// runner, ...). No token may take one of these names, and a token name
// has no '/'.
const (
	BySite    = "site"
	ByCentral = "central"
)

// SitePart is the actor name of a part of the site ("site/dhcp").
func SitePart(part string) string { return BySite + "/" + part }

// CheckName checks a new token's name, which is also the name its changes
// are recorded under: 1-63 lowercase letters, digits, '.', '_', '-' or
// '@', starting with a letter or digit, and not an actor of the system.
func CheckName(field, name string) error {
	switch {
	case name == "":
		return errs.Invalid(field, "is required")
	case !nameRE.MatchString(name):
		return errs.Invalid(field, "%q must be 1-63 lowercase letters, digits, '.', '_', '-' or '@', starting with a letter or digit", name)
	case name == BySite || name == ByCentral:
		return errs.Invalid(field, "%q names the system's own changes: choose another name", name)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,62}$`)
