// Package agentproto is the contract between the appliance and the agent
// that runs in the in-memory installer: the kernel command line the
// installer is booted with, and the agent API's paths and JSON bodies. The
// catalogue of action types the agent runs is package actions, which the
// site's state machine reads too.
//
// It is shared by both sides and depends on neither.
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
//	POST PathSpans      the agent's finished trace spans (Spans), of its
//	                    workflow's trace only; answered with SpansAck
//
// Answers: 200 with the body above; 401 for a missing, malformed, wrong,
// expired or superseded credential (nothing changed; retried slowly); 403
// for a valid credential from another address than its machine's
// (nothing changed), and for spans of another trace than the workflow's
// (final: the agent drops them); 404 for spans to an appliance that
// keeps none (final as well); 429 for a discovery report over the appliance's
// limit on new machines; 409 for a report the workflow's state refuses (a
// late or contradicting report, a finished workflow): final, the agent
// must not retry it but fetch the workflow again; 400 for a malformed
// body: final as well. Any other status, and any network error, is
// transient: the agent retries the same request with backoff until it is
// answered. Reports are idempotent (each names its attempt), so retrying
// one that was applied changes nothing.
//
// Errors have the body {"error": {"code": "...", "message": "...",
// "field": "..."}}, like the appliance's API.
package agentproto

import (
	"encoding/json"
	"time"
)

// Kernel command-line parameters of the installer, set by the appliance's
// iPXE script.
const (
	ParamURL     = "outpost.url"     // the appliance's boot HTTP base URL, http://host:port
	ParamToken   = "outpost.token"   // the credential: per workflow, or per MAC in discovery
	ParamMachine = "outpost.machine" // the machine's id (absent in discovery)
	ParamMAC     = "outpost.mac"     // the MAC the machine booted from
	ParamMode    = "outpost.mode"    // "discover" in discovery mode, else absent
	// ParamTraceparent is the W3C traceparent of the workflow's trace
	// (absent if it has none): the agent's spans descend from it.
	ParamTraceparent = "outpost.traceparent"
)

// ModeDiscover is ParamMode's value in discovery mode.
const ModeDiscover = "discover"

// Paths of the agent API, under ParamURL.
const (
	PathWorkflow = "/agent/v1/workflow"
	PathReport   = "/agent/v1/report"
	PathHardware = "/agent/v1/hardware"
	PathSpans    = "/agent/v1/spans"
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
	// Traceparent is the W3C traceparent of the workflow's trace, which
	// the agent's spans descend from (absent if it has none). It is the
	// one the installer's command line carries (ParamTraceparent), and
	// the only one for a workflow given to a discovered machine.
	Traceparent string `json:"traceparent,omitempty"`
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
	// ReportLost: an attempt an earlier agent of the machine left
	// running (it died: killed, the machine reset) is lost; the
	// appliance retries it apart from the action's retries, a few times.
	ReportLost = "lost"
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

// Spans is the body of POST PathSpans: finished spans of the workflow's
// trace, each the JSON record of package tracing's Span (trace_id,
// span_id, parent, name, service, start, end, attrs, events, error),
// at most MaxSpans of them. The appliance keeps them all or, for a span
// that is malformed (400) or of another trace than the workflow's
// (403), none, naming the span and what is wrong.
type Spans struct {
	Spans []json.RawMessage `json:"spans"`
}

// MaxSpans is the most spans one Spans may carry (tracing.MaxSpansPerMsg).
const MaxSpans = 4096

// SpansAck answers Spans: how many of them the appliance kept (a span
// it already had is kept once).
type SpansAck struct {
	Kept int `json:"kept"`
}

// ProgressInterval is how often, at most, the agent reports progress of a
// long action.
const ProgressInterval = 2 * time.Second
