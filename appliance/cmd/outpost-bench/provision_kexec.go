package main

import (
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// bzImageTemplateName is the kexec-bzimage row's template.
const bzImageTemplateName = "install-testos-bzimage"

// bzImageTemplate is the lab's install template (labsite.InstallTemplate)
// kexecing the test OS's bzImage (labsite.TestOSBzImage), which
// decompresses its XZ payload itself, rather than the uncompressed ELF
// kernel beside it (labsite.TestOSVmlinux): the row against which the
// kexec row shows what the uncompressed kernel saves (run both with
// -provision-rows kexec/pxe,kexec-bzimage/pxe -provision-runs 3).
func bzImageTemplate() []store.Object {
	t := labsite.InstallTemplate()
	t.Name = bzImageTemplateName
	t.Description += " (its bzImage, which decompresses itself)"
	for i, a := range t.Actions {
		if a.Type == "kexec" {
			t.Actions[i].Args["kernel"] = labsite.TestOSBzImage
		}
	}
	return []store.Object{t}
}
