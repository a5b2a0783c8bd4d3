package syncproto

import (
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	parallel(t)
	for name, tc := range map[string]struct {
		local, remote VersionRange
		want          int
		code          string
		says          []string
	}{
		"same":          {local: VersionRange{1, 1}, remote: VersionRange{1, 1}, want: 1},
		"overlap":       {local: VersionRange{1, 3}, remote: VersionRange{2, 5}, want: 3},
		"remote wider":  {local: VersionRange{2, 2}, remote: VersionRange{1, 4}, want: 2},
		"local wider":   {local: VersionRange{1, 4}, remote: VersionRange{2, 2}, want: 2},
		"touching":      {local: VersionRange{1, 2}, remote: VersionRange{2, 3}, want: 2},
		"site too new":  {local: VersionRange{1, 1}, remote: VersionRange{2, 3}, code: CodeIncompatibleVersion, says: []string{"central speaks version 1", "the site speaks versions 2 to 3"}},
		"site too old":  {local: VersionRange{3, 4}, remote: VersionRange{1, 2}, code: CodeIncompatibleVersion, says: []string{"central speaks versions 3 to 4", "the site speaks versions 1 to 2"}},
		"remote broken": {local: VersionRange{1, 1}, remote: VersionRange{0, 1}, code: CodeBadMessage, says: []string{"hello.versions.min"}},
	} {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			got, err := Negotiate(tc.local, tc.remote)
			if tc.code == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Negotiate = %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			if CodeOf(err) != tc.code {
				t.Fatalf("Negotiate = %d, %v; want a %s error", got, err, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
			if err := ErrorFor(err).Validate(); err != nil {
				t.Errorf("the error cannot be sent: %v", err)
			}
		})
	}
	if v, err := Negotiate(Supported, Supported); err != nil || v != Version {
		t.Errorf("Negotiate(Supported, Supported) = %d, %v", v, err)
	}
}
