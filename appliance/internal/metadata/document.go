package metadata

import "net/http"

// document is GET /metadata/v1.json: everything about the instance in one
// object.
type document struct {
	InstanceID string       `json:"instance_id"`
	Hostname   string       `json:"hostname"`
	LocalIPv4  string       `json:"local_ipv4"`
	MAC        string       `json:"mac"`
	Site       string       `json:"site"`
	PublicKeys []string     `json:"public_keys"`
	UserData   string       `json:"user_data"`
	Machine    docMachine   `json:"machine"`
	Workflow   *docWorkflow `json:"workflow,omitempty"`
}

type docMachine struct {
	ID   string   `json:"id"`
	Arch string   `json:"arch"`
	Tags []string `json:"tags"`
}

type docWorkflow struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func jsonDocument(w http.ResponseWriter, _ *http.Request, in *instance) {
	ud, _ := in.userData()
	d := document{
		InstanceID: in.machine.ID,
		Hostname:   in.hostname(),
		LocalIPv4:  in.addr.String(),
		MAC:        in.mac,
		Site:       in.site,
		PublicKeys: in.keys(),
		UserData:   ud,
		Machine:    docMachine{ID: in.machine.ID, Arch: in.machine.Arch, Tags: in.machine.Tags},
	}
	if d.Machine.Tags == nil {
		d.Machine.Tags = []string{}
	}
	if wf := in.workflow; wf != nil {
		d.Workflow = &docWorkflow{ID: wf.ID, Status: string(wf.Status())}
	}
	writeJSON(w, "application/json", d)
}
