package syncproto

import (
	"go/build"
	"testing"
)

// TestStandardLibraryOnly: both sides build this package, so it imports
// nothing but the standard library (see the package doc).
func TestStandardLibraryOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		p, err := build.Import(imp, ".", build.FindOnly)
		if err != nil || !p.Goroot {
			t.Errorf("syncproto imports %s, which is not in the standard library (%v)", imp, err)
		}
	}
}
