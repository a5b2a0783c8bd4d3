package webui_test

import (
	"testing"

	"github.com/outposthq/outpost/internal/webui"
	"github.com/outposthq/outpost/internal/webui/webuitest"
)

// TestVendoredVersions: every vendored file is listed in VERSIONS, which
// scripts/vendor-js.sh writes and checks.
func TestVendoredVersions(t *testing.T) {
	webuitest.CheckVersions(t, webui.Files(), "assets/vendor")
}
