// Package agentproto is the contract between the appliance and the agent
// that runs in the in-memory installer: the kernel command line the
// installer is booted with, the agent API's paths and JSON bodies, and the
// catalogue of action types the agent runs.
//
// It is shared by both sides and depends on neither: the appliance
// validates templates against Catalogue, the agent implements every type
// in it (a test on each side holds them to it).
//
// # Protocol
//
// The agent reads ParamURL and ParamToken from /proc/cmdline and sends
// every request to ParamURL with "Authorization: Bearer <token>":
//
//	GET  PathWorkflow   the workflow: every action with its bound
//	                    arguments and state, and which actions are Ready
//	POST PathReport     a Report (start, progress, finish of an attempt);
//	                    answered with the workflow after it
//	POST PathHardware   discovery mode: a Hardware report; answered with
//	                    HardwareAck
//
// Answers: 200 with the body above; 401 for a missing, malformed or wrong
// credential (nothing changed); 409 for a report the workflow's state
// refuses (a late or contradicting report, a finished workflow): final,
// the agent must not retry it but fetch the workflow again; 400 for a
// malformed body: final as well. Any other status, and any network
// error, is transient: the agent retries the same request with backoff
// until it is answered. Reports are idempotent (each names its attempt),
// so retrying one that was applied changes nothing.
//
// Errors have the body {"error": {"code": "...", "message": "...",
// "field": "..."}}, like the appliance's API.
package agentproto

import "time"

// Kernel command-line parameters of the installer, set by the appliance's
// iPXE script.
const (
	ParamURL     = "outpost.url"     // the appliance's boot HTTP base URL, http://host:port
	ParamToken   = "outpost.token"   // the credential: per workflow, or per MAC in discovery
	ParamMachine = "outpost.machine" // the machine's id (absent in discovery)
	ParamMAC     = "outpost.mac"     // the MAC the machine booted from
	ParamMode    = "outpost.mode"    // "discover" in discovery mode, else absent
)

// ModeDiscover is ParamMode's value in discovery mode.
const ModeDiscover = "discover"

// Paths of the agent API, under ParamURL.
const (
	PathWorkflow = "/agent/v1/workflow"
	PathReport   = "/agent/v1/report"
	PathHardware = "/agent/v1/hardware"
)

// Workflow is what GET PathWorkflow and POST PathReport answer.
type Workflow struct {
	ID        string `json:"id"`
	MachineID string `json:"machine_id"`
	// Status is the workflow's: pending, running, succeeded, failed or
	// timed_out.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Actions are in template order, with their arguments bound.
	Actions []Action `json:"actions"`
	// Ready names the actions the agent may start now, in template order.
	Ready []string `json:"ready"`
	// Poll is how long the agent may wait before asking again when nothing
	// is ready (a retry's backoff), in seconds.
	Poll float64 `json:"poll_seconds,omitempty"`
}

// Done reports whether the workflow has ended: nothing more will run.
func (w *Workflow) Done() bool {
	switch w.Status {
	case "succeeded", "failed", "timed_out":
		return true
	}
	return false
}

// Action is one action of a Workflow.
type Action struct {
	Name string            `json:"name"`
	Type string            `json:"type"`
	Args map[string]string `json:"args,omitempty"`
	// Status is pending, running, succeeded, failed, timed_out or skipped.
	Status string `json:"status"`
	// Attempt is the number of the latest attempt started (0: none). The
	// agent starts attempt Attempt+1 of a ready action.
	Attempt int `json:"attempt"`
	// Timeout bounds one attempt, in seconds (0: none). The appliance
	// times the attempt out on its own; the agent should give up then too.
	Timeout float64 `json:"timeout_seconds,omitempty"`
}

// Report kinds.
const (
	ReportStart    = "start"
	ReportProgress = "progress"
	ReportFinish   = "finish"
)

// Report is the body of POST PathReport: the start, progress or result of
// one attempt of one action.
type Report struct {
	Action  string `json:"action"`
	Attempt int    `json:"attempt"`
	Kind    string `json:"kind"`
	// OK is the result of a finish report.
	OK bool `json:"ok,omitempty"`
	// Progress (0-100) and Message go with progress and finish reports;
	// a failed finish says why in Message.
	Progress int    `json:"progress,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Hardware is the body of POST PathHardware: what the agent found in
// discovery mode.
type Hardware struct {
	// MAC is the MAC the machine booted from (ParamMAC).
	MAC         string `json:"mac"`
	Vendor      string `json:"vendor,omitempty"` // /sys/class/dmi/id/sys_vendor
	Product     string `json:"product,omitempty"`
	Serial      string `json:"serial,omitempty"`
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Disks       []Disk `json:"disks,omitempty"`
	NICs        []NIC  `json:"nics"`
}

// Disk is one block device found in discovery.
type Disk struct {
	Name       string `json:"name"` // kernel name, such as "vda" or "nvme0n1"
	SizeBytes  uint64 `json:"size_bytes"`
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	Rotational bool   `json:"rotational,omitempty"`
}

// NIC is one network interface found in discovery (not loopback).
type NIC struct {
	Name   string `json:"name"`
	MAC    string `json:"mac"`
	Driver string `json:"driver,omitempty"`
}

// HardwareAck answers a Hardware report: the machine record it created or
// updated.
type HardwareAck struct {
	MachineID string `json:"machine_id"`
	Created   bool   `json:"created"`
}

// Error is the body of every error answer.
type Error struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

// ActionSpec describes an action type: the arguments a template must give
// it and those it may.
type ActionSpec struct {
	Required []string
	Optional []string
	// Doc says what the action does, for error messages and docs.
	Doc string
}

// Catalogue is every action type the agent runs. Argument values are
// strings; "device" is a block device path such as /dev/vda.
var Catalogue = map[string]ActionSpec{
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
			"gives url and sha256 itself. A relative url is under " + ParamURL,
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

// ProgressInterval is how often, at most, the agent reports progress of a
// long action.
const ProgressInterval = 2 * time.Second
