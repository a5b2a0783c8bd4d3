package access

import (
	"testing"
	"time"
)

func TestAllows(t *testing.T) {
	want := map[Role][]Role{ // what each role allows
		Viewer:   {Viewer},
		Operator: {Viewer, Operator},
		Admin:    {Viewer, Operator, Admin},
		"":       nil,
		"root":   nil,
	}
	for have, allowed := range want {
		for _, need := range append(Roles, "", "root") {
			ok := false
			for _, a := range allowed {
				ok = ok || a == need
			}
			if got := have.Allows(need); got != ok {
				t.Errorf("%q.Allows(%q) = %v, want %v", have, need, got, ok)
			}
		}
	}
}

func TestGrant(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if r := (Grant{}).Effective(); r != Admin {
		t.Errorf("a grant of a release before roles is %q, want admin", r)
	}
	if r := (Grant{Role: Viewer}).Effective(); r != Viewer {
		t.Errorf("a viewer's grant is %q", r)
	}
	g := Grant{Role: Viewer, ExpiresAt: t0}
	if g.Expired(t0.Add(-time.Nanosecond)) || !g.Expired(t0) || (Grant{Role: Viewer}).Expired(t0.AddDate(100, 0, 0)) {
		t.Error("Expired: want false before the expiry, true from it, and never without one")
	}
	if (Grant{}).Validate() == nil || (Grant{Role: "root"}).Validate() == nil || g.Validate() != nil {
		t.Error("Validate: want a new grant to need a role")
	}
}
