// Package actions is the catalogue of what a workflow may ask of a
// machine: the action types the installer's agent runs, with the
// arguments each takes, and the well-known workflow values the appliance
// fills in. The site's state machine validates templates and binds
// workflows against it; the agent implements every type in it (a test on
// each side holds them to it). Pure data: it depends on nothing.
package actions

// Spec describes an action type: the arguments a template must give
// it and those it may.
type Spec struct {
	Required []string
	Optional []string
	// Doc says what the action does, for error messages and docs.
	Doc string
}

// Catalogue is every action type the agent runs. Argument values are
// strings; "device" is a block device path such as /dev/vda.
var Catalogue = map[string]Spec{
	"disk.wipe": {
		Required: []string{"device"},
		Optional: []string{"mode"},
		Doc: "erase a disk: mode quick (the default) zeroes the first and last MiB, which removes " +
			"partition tables and file-system signatures; mode zero overwrites the whole disk",
	},
	"image.write": {
		Required: []string{"device"},
		Optional: []string{"image", "url", "sha256", "format"},
		Doc: "stream an OS image to a disk, decompressing gzip, zstd or xz on the fly and verifying " +
			"its sha256 before it reports success. The template names a site image (image), which " +
			"the appliance resolves to url, sha256 and format when the workflow is created; or it " +
			"gives url and sha256 itself. A relative url is under the appliance's boot URL (outpost.url)",
	},
	"file.write": {
		Required: []string{"path", "content"},
		Optional: []string{"device", "fstype", "mode"},
		Doc: "write content to path; with device (a partition such as /dev/vda1) the path is on that " +
			"file system, mounted for the write (fstype: auto-detected unless given); mode is octal (0644)",
	},
	"exec": {
		Required: []string{"command"},
		Optional: []string{"timeout"},
		Doc:      "run command with /bin/sh -c in the installer; it fails on a non-zero exit, with the output's tail as the message",
	},
	"reboot": {
		Doc: "reboot the machine (reported done before it happens)",
	},
	"kexec": {
		Required: []string{"kernel"},
		Optional: []string{"initrd", "cmdline", "device"},
		Doc:      "boot another kernel without a firmware reboot; kernel and initrd are paths, on device's file system if given",
	},
	"poweroff": {
		Doc: "power the machine off (reported done before it happens)",
	},
}

// Well-known workflow values the appliance fills in when a workflow is
// created, unless the workflow gives them: templates may use them as
// {{ .boot_url }} and so on.
const (
	ValueBootURL     = "boot_url"     // the appliance's boot HTTP base URL
	ValueMetadataURL = "metadata_url" // the metadata service's base URL (the same host)
	ValueMachineID   = "machine_id"
	ValueHostname    = "hostname" // defaults to the machine's hostname, else its id
)

// Workflow values the metadata service reads.
const (
	ValueSSHKeys  = "ssh_keys"  // public keys, one per line
	ValueUserData = "user_data" // cloud-init user-data, served verbatim
)

// Required maps each action type to its required arguments, as
// workflow.NewPlan takes them.
func Required() map[string][]string {
	m := make(map[string][]string, len(Catalogue))
	for t, spec := range Catalogue {
		m[t] = spec.Required
	}
	return m
}
