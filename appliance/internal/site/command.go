package site

import (
	"encoding/json"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
)

// Type is a command's first byte (package command).
type Type = command.Type

// Every command the site's log carries, in one list. Numbers are
// append-only: never renumber or reuse one, old logs replay through this
// table. Add a command at the end, with its payload below and its apply
// function in apply_<entity>.go, registered in table (statemachine.go);
// give the proposer a typed method that builds it (proposer.go). A
// command whose meaning changes gets a new number; the old one keeps its
// old meaning for replay (apply_legacy.go).
const (
	PutMachine     Type = 1  // Put[store.Machine], its event carried in the command (the proposer's up to release a66edc4; PutMachineV2 since)
	DeleteMachine  Type = 2  // Delete
	PutSubnetV1    Type = 3  // Put[store.Subnet], releases up to b482c18: replay only (apply_legacy.go)
	DeleteSubnet   Type = 4  // Delete
	PutLease       Type = 5  // Put[store.Lease]: an operator's or an older leader's lease (CommitLease is the DHCP path's)
	DeleteLease    Type = 6  // Delete
	PutImageV1     Type = 7  // Put[store.Image], releases up to e85a6fa (no artifact records): replay only (apply_legacy.go)
	DeleteImageV1  Type = 8  // Delete, releases up to e85a6fa (no artifact records): replay only (apply_legacy.go)
	PutTemplate    Type = 9  // Put[store.Template]
	DeleteTemplate Type = 10 // Delete
	PutWorkflow    Type = 11 // Put[store.Workflow]: creates a workflow, binding its template
	DeleteWorkflow Type = 12 // Delete
	AppendEvents   Type = 13 // Events
	PutSettings    Type = 14 // Put[store.Settings]
	PutMember      Type = 15 // Put[store.Member]
	DeleteMember   Type = 16 // Delete
	PutTokenV1     Type = 17 // Put[store.Token], releases up to b482c18 (an admin token): replay only (apply_legacy.go)
	DeleteToken    Type = 18 // Delete

	// 19 and 20 are the shared core's: command.Batch (the group commit)
	// and command.Noop (a new leader's first entry).

	AdvanceWorkflow      Type = 21 // Advance: an agent's report, the leader's timer, a cancel
	DiscoverV1           Type = 22 // DiscoverPayload, releases up to 6856dfc (machine.discovered without the machine's record): replay only (apply_legacy.go)
	PutOrderV1           Type = 23 // Put[store.Order], releases up to b482c18: replay only (apply_legacy.go)
	DeleteOrder          Type = 24 // Delete
	DeleteJob            Type = 25 // Delete
	StartJob             Type = 26 // JobStart
	FinishJob            Type = 27 // JobFinish
	SetPower             Type = 28 // Power: a power reading of the leader's poller
	ApplyDesiredV1       Type = 29 // DesiredPayload, releases up to b482c18: replay only (apply_legacy.go)
	AckEvents            Type = 30 // AckedPayload: central has stored the events up to a sequence
	CommitLease          Type = 31 // LeaseCommit (binary, lease.go): the DHCP server's offer, ACK, release or decline
	PlaceOrderV2         Type = 32 // Put[store.Order], releases up to e85a6fa (no waiting for artifacts): replay only (apply_legacy.go)
	ApplyDesiredV2       Type = 33 // DesiredPayload, releases up to e85a6fa (no artifact records, no waiting): replay only (apply_legacy.go)
	CreateToken          Type = 34 // Put[store.Token]: a new API token with its role, name and expiry
	RecordBMCCertificate Type = 35 // BMCCertificate: a certificate a machine's BMC presented that the site did not trust
	AcceptBMCCertificate Type = 36 // BMCCertificate: an operator trusts a certificate of a machine's BMC
	BindWorkflow         Type = 37 // Bind: the first address to claim a workflow's installer credential (proxyDHCP)
	PutSubnetV2          Type = 38 // Put[store.Subnet], releases up to b7e757c (a gateway on the network or broadcast address allowed): replay only (apply_subnet.go)
	SetCAGeneration      Type = 39 // CARotation: a step of a rotation of the site's CA (apply_ca.go)
	QueueBootPXE         Type = 40 // BootPXE: an operator sets a machine's next boot to the network, as a boot_pxe job (apply_job.go)
	RecordLink           Type = 41 // LinkReport: the leader's sync client reports the link to central (apply_link.go)
	RecordArtifact       Type = 42 // ArtifactHeld: a node holds an artifact, verified (apply_artifact.go)
	ForgetArtifact       Type = 43 // ArtifactHeld: a node removed an artifact (apply_artifact.go)
	ReportArtifact       Type = 44 // ArtifactReport: the leader's note on a pull from past the site (apply_artifact.go)
	PutImage             Type = 45 // Put[store.Image]: the artifact records follow the images (apply_artifact.go)
	DeleteImage          Type = 46 // Delete: the artifact records follow the images (apply_artifact.go)
	PlaceOrder           Type = 47 // Put[store.Order]: creates an order, its workflow and its jobs, or waits for its artifacts (apply_order.go)
	ApplyDesiredV3       Type = 48 // DesiredPayload, releases up to 6856dfc (no events of central's machine changes): replay only (apply_legacy.go)
	ApplyDesired         Type = 51 // DesiredPayload: a revision of central's desired state; its orders may wait for artifacts, its machine changes are events (apply_sync.go)
	DiscoverV2           Type = 52 // DiscoverPayload, releases up to 96fac4a (machine.discovered without the hardware's vendor and product): replay only (apply_legacy.go)
	Discover             Type = 53 // DiscoverPayload: what an installer in discovery mode found; machine.discovered has the machine's record and its vendor and product (apply_machine.go)
	PutMachineV2         Type = 54 // Put[store.Machine]: as PutMachine, but the state machine records the put's event from the machine it stored, and the command carries none of it (apply_machine.go)
	QuarantineAddress    Type = 55 // AddressConflict: a host answered the DHCP server's ARP probe of an address it was about to offer (apply_lease_conflict.go)
	PutSubnet            Type = 58 // Put[store.Subnet]: a subnet DHCP can serve, its gateway a host's address, overlapping no other (apply_subnet.go)
	LoseAttempt          Type = 59 // Advance with a lost report: a later agent found an attempt of its machine's earlier agent running; retried apart from the action's retries (apply_workflow.go)
	TakeOverJob          Type = 60 // JobStart: a new leader starts a job an earlier leader left running, before its deadline (apply_job.go)
)

// Every payload but CommitLease's (always the DHCP server's) names its
// actor in By (actor.go); commands of releases before actors have none.

// Put is the payload of the Put* commands: the object to store, the
// version the writer last read (0: any), and events recorded with it.
type Put[T any] struct {
	Object *T            `json:"object"`
	Expect uint64        `json:"expect,omitempty"`
	Time   time.Time     `json:"time"`
	Events []store.Event `json:"events,omitempty"`
	By     string        `json:"by,omitempty"`
}

// Delete is the payload of the Delete* commands.
type Delete struct {
	Key    string        `json:"key"`
	Expect uint64        `json:"expect,omitempty"`
	Time   time.Time     `json:"time"`
	Events []store.Event `json:"events,omitempty"`
	By     string        `json:"by,omitempty"`
}

// Events is the payload of AppendEvents.
type Events struct {
	Time   time.Time     `json:"time"`
	Events []store.Event `json:"events"`
	By     string        `json:"by,omitempty"`
}

// How an Advance moves a workflow.
const (
	AdvanceReport = "report" // an agent's report
	AdvanceTick   = "tick"   // the leader's timer: timeouts and the deadline
	AdvanceCancel = "cancel" // an operator
)

// Advance is the payload of AdvanceWorkflow. Time is the proposer's clock,
// the only clock the transition reads, so every node computes the same
// state.
type Advance struct {
	Workflow string    `json:"workflow"`
	Kind     string    `json:"kind"`
	Report   *Report   `json:"report,omitempty"`
	Reason   string    `json:"reason,omitempty"` // of a cancel
	Time     time.Time `json:"time"`
	By       string    `json:"by,omitempty"`
}

// Bind is the payload of BindWorkflow: Addr claims workflow Workflow's
// installer credential, unless an address already has.
type Bind struct {
	Workflow string    `json:"workflow"`
	Addr     string    `json:"addr"`
	Time     time.Time `json:"time"`
	By       string    `json:"by,omitempty"`
}

// Report kinds.
const (
	ReportStart    = "start"
	ReportProgress = "progress"
	ReportFinish   = "finish"
	// ReportLost: the attempt's agent died while it ran (LoseAttempt;
	// AdvanceWorkflow refuses it, as the releases before it did).
	ReportLost = "lost"
)

// Report is an agent's report of one attempt of one action, as the log
// records it. Its JSON is the agent API's (agentproto.Report) of release
// b482c18; the log keeps its own type so that the protocol can change
// without changing the log.
type Report struct {
	Action   string `json:"action"`
	Attempt  int    `json:"attempt"`
	Kind     string `json:"kind"`
	OK       bool   `json:"ok,omitempty"`
	Progress int    `json:"progress,omitempty"`
	Message  string `json:"message,omitempty"`
}

// DiscoverPayload is the payload of Discover.
type DiscoverPayload struct {
	Hardware Hardware  `json:"hardware"`
	Time     time.Time `json:"time"`
	By       string    `json:"by,omitempty"`
}

// Hardware is what an installer in discovery mode found, as the log
// records it (the JSON of agentproto.Hardware of release b482c18).
type Hardware struct {
	MAC         string `json:"mac"`
	Vendor      string `json:"vendor,omitempty"`
	Product     string `json:"product,omitempty"`
	Serial      string `json:"serial,omitempty"`
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Disks       []Disk `json:"disks,omitempty"`
	NICs        []NIC  `json:"nics"`
}

// Disk is a disk an installer found.
type Disk struct {
	Name       string `json:"name"`
	SizeBytes  uint64 `json:"size_bytes"`
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	Rotational bool   `json:"rotational,omitempty"`
}

// NIC is a network interface an installer found.
type NIC struct {
	Name   string `json:"name"`
	MAC    string `json:"mac"`
	Driver string `json:"driver,omitempty"`
}

// DiscoverResult is what applying Discover returns.
type DiscoverResult struct {
	MachineID string `json:"machine_id"`
	Created   bool   `json:"created"`
}

// JobStart is the payload of StartJob: the leader starts the attempt'th
// execution of a job, which must be over by Deadline.
type JobStart struct {
	Job      string    `json:"job"`
	Attempt  int       `json:"attempt"`
	Deadline time.Time `json:"deadline"`
	Time     time.Time `json:"time"`
	By       string    `json:"by,omitempty"`
}

// JobFinish is the payload of FinishJob.
type JobFinish struct {
	Job     string    `json:"job"`
	Attempt int       `json:"attempt"`
	Result  JobResult `json:"result"`
	Time    time.Time `json:"time"`
	By      string    `json:"by,omitempty"`
}

// BootPXE is the payload of QueueBootPXE: job Job (an id the proposer
// drew) sets machine Machine's next boot device to the network through
// its BMC; Persistent for every boot rather than the next, EFI for UEFI.
type BootPXE struct {
	Job        string    `json:"job"`
	Machine    string    `json:"machine"`
	Persistent bool      `json:"persistent,omitempty"`
	EFI        bool      `json:"efi,omitempty"`
	Time       time.Time `json:"time"`
	By         string    `json:"by,omitempty"`
}

// JobResult is what an execution of a job came to.
type JobResult struct {
	OK      bool   `json:"ok"`
	Power   string `json:"power,omitempty"`
	Warning string `json:"warning,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Power is the payload of SetPower. Expect, if not 0, is the machine's
// version when its power was read: a reading older than the machine's
// latest change (a job that powered it on or off since) is stale, and
// changes nothing.
type Power struct {
	Machine string    `json:"machine"`
	Power   string    `json:"power"`
	Expect  uint64    `json:"expect,omitempty"`
	Time    time.Time `json:"time"`
	By      string    `json:"by,omitempty"`
}

// BMCCertificate is the payload of RecordBMCCertificate and
// AcceptBMCCertificate: a certificate of a machine's BMC, by fingerprint
// (store.NormalizeFingerprint's form). Address, in a record, is the BMC
// address the certificate was presented at.
type BMCCertificate struct {
	Machine     string    `json:"machine"`
	Fingerprint string    `json:"fingerprint"`
	Address     string    `json:"address,omitempty"`
	Time        time.Time `json:"time"`
	By          string    `json:"by,omitempty"`
}

// DesiredPayload is the payload of ApplyDesired.
type DesiredPayload struct {
	Desired Desired   `json:"desired"`
	Time    time.Time `json:"time"`
	By      string    `json:"by,omitempty"`
}

// Desired is one complete revision of central's desired state.
type Desired struct {
	Revision uint64          `json:"revision"`
	Full     bool            `json:"full,omitempty"`
	Changes  []DesiredChange `json:"changes"`
}

// DesiredChange puts or deletes one object of desired state, as central
// sends it (syncproto.Change).
type DesiredChange struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Object  json.RawMessage `json:"object,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
}

// Kinds of desired-state objects central manages at a site.
const (
	DesiredOrder    = "order"
	DesiredMachine  = "machine"
	DesiredImage    = "image"
	DesiredTemplate = "template"
)

// DesiredResult says what applying a revision did.
type DesiredResult struct {
	Revision uint64 `json:"revision"`
	// Applied is false for a revision at or below the applied one: it was
	// applied before, and nothing changed.
	Applied bool `json:"applied"`
	// Refused counts the changes the site refused; each is recorded as
	// an event (sync.order_refused, sync.change_refused).
	Refused int `json:"refused,omitempty"`
}

// The steps of a rotation of the site's CA (CARotation.Step).
const (
	CABegin  = "begin"
	CAFinish = "finish"
)

// CARotation is the payload of SetCAGeneration: begin makes Generation
// (the current one + 1) current, the current one still trusted; finish
// stops trusting the one before Generation, once every member's
// certificate is of Generation.
type CARotation struct {
	Step       string    `json:"step"`
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
	By         string    `json:"by,omitempty"`
}

// AckedPayload is the payload of AckEvents.
type AckedPayload struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
}

// LinkReport is the payload of RecordLink: the state of the link to
// central as node Node, the leader, sees it (store.Link's fields).
// Time is when the proposer made the report.
type LinkReport struct {
	Node      string    `json:"node"`
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	LastSync  time.Time `json:"last_sync,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Central   string    `json:"central"`
	Time      time.Time `json:"time"`
	By        string    `json:"by,omitempty"`
}

// ArtifactHeld is the payload of RecordArtifact and ForgetArtifact: node
// Node holds (or no longer holds) the artifact SHA256, of Size bytes.
type ArtifactHeld struct {
	Node   string    `json:"node"`
	SHA256 string    `json:"sha256"`
	Size   int64     `json:"size_bytes,omitempty"`
	Time   time.Time `json:"time"`
	By     string    `json:"by,omitempty"`
}

// Kinds of ArtifactReport.
const (
	ArtifactPulling = "pulling" // a pull's progress
	ArtifactCorrupt = "corrupt" // a transfer thrown away: its bytes did not hash to the digest
	ArtifactFailed  = "failed"  // a try failed (the source refused, the connection broke)
)

// ArtifactReport is the payload of ReportArtifact: node Node's note on
// a transfer of artifact SHA256 from Source.
type ArtifactReport struct {
	Node   string `json:"node"`
	SHA256 string `json:"sha256"`
	Kind   string `json:"kind"`
	Source string `json:"source"`
	// Held and Size are the bytes received and the artifact's size
	// (0: unknown).
	Held int64 `json:"held_bytes,omitempty"`
	Size int64 `json:"size_bytes,omitempty"`
	// Message says what went wrong, for corrupt and failed.
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
	By      string    `json:"by,omitempty"`
}
