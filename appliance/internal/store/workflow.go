package store

// WorkflowState is the state of a workflow or of one of its actions.
type WorkflowState string

// Workflow states.
const (
	WorkflowPending   WorkflowState = "pending"
	WorkflowRunning   WorkflowState = "running"
	WorkflowSucceeded WorkflowState = "succeeded"
	WorkflowFailed    WorkflowState = "failed"
	WorkflowTimedOut  WorkflowState = "timed_out"
)

var workflowStates = []string{
	string(WorkflowPending), string(WorkflowRunning), string(WorkflowSucceeded),
	string(WorkflowFailed), string(WorkflowTimedOut),
}

// Workflow binds a template to a machine with the values it needs.
type Workflow struct {
	Meta
	ID        string            `json:"id"`
	MachineID string            `json:"machine_id"`
	Template  string            `json:"template"`
	Values    map[string]string `json:"values,omitempty"`
	State     WorkflowState     `json:"state"`
	Reason    string            `json:"reason,omitempty"`
}

func (*Workflow) Kind() string   { return "workflow" }
func (w *Workflow) Key() string  { return w.ID }
func (*Workflow) bucket() []byte { return bucketWorkflows }

// Normalize fills defaults.
func (w *Workflow) Normalize() {
	if w.State == "" {
		w.State = WorkflowPending
	}
}

// Validate checks the workflow on its own.
func (w *Workflow) Validate() error {
	if err := validName("id", w.ID); err != nil {
		return err
	}
	if err := validName("machine_id", w.MachineID); err != nil {
		return err
	}
	if err := validName("template", w.Template); err != nil {
		return err
	}
	return validOneOf("state", string(w.State), workflowStates...)
}

// UnsafeCheckWorkflowRefs checks that the workflow's machine and template
// exist, in the transaction that stores it.
func (tx *Tx) UnsafeCheckWorkflowRefs(w *Workflow) error {
	if _, err := Get[Machine](tx, w.MachineID); err != nil {
		return Invalid("machine_id", "no machine %q", w.MachineID)
	}
	if _, err := Get[Template](tx, w.Template); err != nil {
		return Invalid("template", "no template %q", w.Template)
	}
	return nil
}
