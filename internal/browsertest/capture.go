package browsertest

import (
	"flag"
	"path/filepath"
	"regexp"
)

// screenshotDir is where Capture writes its PNGs; `make screenshots`
// sets it to docs/screenshots for the packages whose tests use the
// harness.
var screenshotDir = flag.String("browsertest.screenshots", "",
	"write a PNG of each page a test captures (Browser.Capture) to this directory")

// captureName is a name Capture accepts: it becomes a file name.
var captureName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Capture writes a PNG of the whole page as <name>.png into the
// directory -browsertest.screenshots names, and returns its path; it
// writes nothing and returns "" without the flag. A test calls it once
// its page shows what the picture is to show.
func (b *Browser) Capture(name string) string {
	b.t.Helper()
	if !captureName.MatchString(name) {
		b.t.Fatalf("browsertest: capture name %q: want lowercase letters, digits and dashes", name)
	}
	if *screenshotDir == "" {
		return ""
	}
	path := filepath.Join(*screenshotDir, name+".png")
	b.SaveScreenshot(path)
	b.t.Logf("browsertest: %s", path)
	return path
}

// ScreenshotDir returns the -browsertest.screenshots directory ("" when
// unset).
func ScreenshotDir() string { return *screenshotDir }
