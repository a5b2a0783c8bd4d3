package artifact

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	hex := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := map[string]struct {
		in    string
		want  Digest
		isRef bool
	}{
		"bare":                {in: hex, want: Digest(hex)},
		"prefixed":            {in: "sha256:" + hex, want: Digest(hex), isRef: true},
		"upper case":          {in: "SHA256:" + strings.ToUpper(hex), want: Digest(hex), isRef: true},
		"mixed prefix":        {in: "Sha256:" + hex, want: Digest(hex), isRef: true},
		"empty":               {in: ""},
		"short":               {in: hex[:63]},
		"long":                {in: hex + "0"},
		"not hex":             {in: strings.Replace(hex, "e", "g", 1)},
		"prefixed twice":      {in: "sha256:sha256:" + hex},
		"another algorithm":   {in: "sha512:" + hex},
		"prefix alone":        {in: "sha256:"},
		"spaces":              {in: " " + hex},
		"a path":              {in: "../../" + hex[6:]},
		"non-ASCII same size": {in: "é" + hex[2:]},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseDigest(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrBadDigest) {
					t.Errorf("ParseDigest(%q) = %q, %v; want ErrBadDigest", tt.in, got, err)
				}
			} else if got != tt.want || err != nil {
				t.Errorf("ParseDigest(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if IsRef(tt.in) != tt.isRef {
				t.Errorf("IsRef(%q) = %v", tt.in, !tt.isRef)
			}
		})
	}
	d := Digest(hex)
	if d.Ref() != "sha256:"+hex || d.Short() != hex[:12] {
		t.Errorf("Ref %q, Short %q", d.Ref(), d.Short())
	}
}

// ParseDigest never panics, and what it accepts is a valid digest that
// reads back from its reference.
func FuzzParseDigest(f *testing.F) {
	hex := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, s := range []string{"", hex, "sha256:" + hex, "SHA256:" + strings.ToUpper(hex), "sha256:sha256:" + hex, "sha256:", strings.Repeat("é", 32)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			if !errors.Is(err, ErrBadDigest) || d != "" {
				t.Fatalf("ParseDigest(%q) = %q, %v", s, d, err)
			}
			return
		}
		if !d.valid() {
			t.Fatalf("ParseDigest(%q) = %q: not valid", s, d)
		}
		back, err := ParseDigest(d.Ref())
		if err != nil || back != d || !IsRef(d.Ref()) {
			t.Fatalf("%q: Ref %q reads back as %q, %v", s, d.Ref(), back, err)
		}
		if again, err := ParseDigest(string(d)); err != nil || again != d {
			t.Fatalf("%q: %q reads back as %q, %v", s, d, again, err)
		}
	})
}
