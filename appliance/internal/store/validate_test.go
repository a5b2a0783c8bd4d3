package store

import (
	"regexp"
	"strings"
	"testing"
)

// The regular expressions isName and isHostname replaced: they are the
// oracle the hand-written checks must agree with.
var (
	nameOracle     = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)
	hostnameOracle = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
)

func TestNameAndHostnameMatchTheirRegexps(t *testing.T) {
	cases := []string{
		"", "a", "A", "0", "-", ".", "_", "a-", "-a", "a.", ".a", "a_b", "a.b", "a..b", "a-b", "aB", "w1-1",
		"m7", "rack-12.node_3", "x.y.z", "a.-b", "a-.b", "é", "a b", "a\x00", "a\n",
		strings.Repeat("a", 62), strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), strings.Repeat("a", 64) + ".b",
		"a" + strings.Repeat("-", 61) + "a", "a" + strings.Repeat("-", 62) + "a",
	}
	// Every string of up to three characters over an alphabet that has
	// each class the checks tell apart.
	alphabet := "aZ0-._ /"
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		cases = append(cases, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			grow(prefix+string(c), n-1)
		}
	}
	grow("", 4)
	for _, v := range cases {
		if got, want := isName(v), nameOracle.MatchString(v); got != want {
			t.Errorf("isName(%q) = %v, the regexp says %v", v, got, want)
		}
		if got, want := isHostname(v), hostnameOracle.MatchString(v); got != want {
			t.Errorf("isHostname(%q) = %v, the regexp says %v", v, got, want)
		}
	}
}

func FuzzNameAndHostname(f *testing.F) {
	for _, s := range []string{"a", "a.b", "a-", "A-b.c", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := isName(v), nameOracle.MatchString(v); got != want {
			t.Errorf("isName(%q) = %v, the regexp says %v", v, got, want)
		}
		if got, want := isHostname(v), hostnameOracle.MatchString(v); got != want {
			t.Errorf("isHostname(%q) = %v, the regexp says %v", v, got, want)
		}
	})
}
