package sol

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRing(t *testing.T) {
	tests := map[string]struct {
		size   int
		writes []string
		want   string
	}{
		"empty":                {size: 8, want: ""},
		"under":                {size: 8, writes: []string{"abc", "de"}, want: "abcde"},
		"exactly full":         {size: 8, writes: []string{"abcd", "efgh"}, want: "abcdefgh"},
		"wraps":                {size: 8, writes: []string{"abcdef", "ghij"}, want: "cdefghij"},
		"wraps twice":          {size: 4, writes: []string{"abc", "def", "ghi"}, want: "fghi"},
		"one write too big":    {size: 4, writes: []string{"abcdefgh"}, want: "efgh"},
		"exact size write":     {size: 4, writes: []string{"xy", "abcd"}, want: "abcd"},
		"big after wrap":       {size: 4, writes: []string{"abc", "de", "123456"}, want: "3456"},
		"small after big":      {size: 4, writes: []string{"abcdefgh", "ij"}, want: "ghij"},
		"empty write":          {size: 4, writes: []string{"ab", "", "c"}, want: "abc"},
		"ends on the boundary": {size: 4, writes: []string{"ab", "cd", "ef", "gh"}, want: "efgh"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := newRing(tc.size)
			for _, w := range tc.writes {
				r.Write([]byte(w))
			}
			if diff := cmp.Diff(tc.want, string(r.Bytes())); diff != "" {
				t.Errorf("Bytes (-want +got):\n%s", diff)
			}
			if r.Len() != len(tc.want) {
				t.Errorf("Len = %d, want %d", r.Len(), len(tc.want))
			}
		})
	}
}

// TestRingBytesIsACopy: what a viewer got is not changed by later output.
func TestRingBytesIsACopy(t *testing.T) {
	r := newRing(4)
	r.Write([]byte("abcd"))
	got := r.Bytes()
	r.Write([]byte("zz"))
	if string(got) != "abcd" {
		t.Errorf("Bytes changed to %q by a later write", got)
	}
}
