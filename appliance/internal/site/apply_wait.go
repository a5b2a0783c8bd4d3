package site

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Orders that wait for their artifacts. A provision or deprovision order
// needs the artifacts its workflow writes (the content-addressed images
// of its image.write actions) and the installer's kernel and initrd
// where they are artifacts. While a node of the site holds none of one
// of them, the order is stored waiting (store.OrderWaiting), with the
// reason, and nothing else: no workflow, no jobs, no address. Every
// change that may let it start (an image put or deleted, the first node
// to hold an artifact) reviews the waiting orders in the order they were
// placed: one whose artifacts are all at the site starts as PlaceOrder
// would have started it; one that can no longer start (its machine or
// image deleted, its template no longer binding) fails, saying why.

// maxReason bounds a waiting order's reason.
const maxReason = 1024

// need is an artifact an order needs.
type need struct {
	digest string
	image  string // the image that points at it
	role   string // image, kernel, initrd
	size   int64
	// wait: the site serves it from its artifacts, so the order waits
	// for it; an image that is a file of each node's artifact directory
	// does not.
	wait bool
}

// needs is what an order needs.
type needs struct {
	list []need
	// image is the digest the order's workflow writes (its first
	// image.write), "" if none.
	image string
}

// orderNeeds returns what order o, for machine m, needs. It binds the
// workflow the order would make, and so refuses what that would refuse
// (a missing template or image, a plan that does not bind).
func orderNeeds(tx *store.Tx, o *store.Order, m *store.Machine) (*needs, error) {
	ns := &needs{}
	if o.Action != store.OrderProvision && o.Action != store.OrderDeprovision {
		return ns, nil
	}
	w := newOrderWorkflow(o, m)
	if err := w.Validate(); err != nil {
		return nil, err
	}
	t, err := store.Get[store.Template](tx, w.Template)
	if err != nil {
		return nil, errs.Invalid("template", "no template %q", w.Template)
	}
	bound, err := bindActions(tx, t, m, w)
	if err != nil {
		return nil, err
	}
	for _, a := range bound {
		if a.Type != "image.write" {
			continue
		}
		if ns.image == "" {
			ns.image = a.Args["sha256"]
		}
		if name := a.Args["image"]; name != "" {
			img, err := store.Get[store.Image](tx, name)
			if err != nil {
				return nil, err
			}
			ns.add(img, img.ContentAddressed())
		}
	}
	// The machine boots the installer of its architecture (an arm64
	// machine's GRUB asks for the arm64 one).
	inst, problem, err := tx.InstallerFor(m.Arch)
	if err != nil {
		return nil, err
	}
	if problem == "" {
		ns.add(inst, true)
	}
	return ns, nil
}

// add adds the artifacts img points at.
func (ns *needs) add(img *store.Image, wait bool) {
	for _, a := range img.Artifacts() {
		if !slices.ContainsFunc(ns.list, func(n need) bool { return n.digest == a.SHA256 }) {
			ns.list = append(ns.list, need{digest: a.SHA256, image: img.Name, role: a.Role, size: a.Size, wait: wait})
		}
	}
}

// missing returns the needs the order waits for that no node holds.
func (ns *needs) missing(tx *store.Tx) []need {
	var out []need
	for _, n := range ns.list {
		if !n.wait {
			continue
		}
		rec, err := store.Get[store.Artifact](tx, n.digest)
		if err != nil || len(rec.Nodes) == 0 {
			out = append(out, n)
		}
	}
	return out
}

func digests(ns []need) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.digest
	}
	return out
}

// waitOrder stores order o waiting for its missing artifacts.
func waitOrder(tx *store.Tx, o *store.Order, ns *needs, missing []need, wr store.Write) error {
	o.State, o.Workflow, o.Jobs = store.OrderWaiting, "", nil
	o.Reason, o.WaitingFor = waitingReason(tx, missing), digests(missing)
	if err := tx.UnsafePut(o, wr); err != nil {
		return err
	}
	return event(tx, wr, store.Event{MachineID: o.MachineID, Kind: "order.waiting",
		Message: fmt.Sprintf("order %s waits: %s", o.ID, o.Reason),
		Fields:  map[string]string{"order": o.ID, "action": o.Action, "image": missing[0].image, "sha256": missing[0].digest}})
}

// otherImage says why order o cannot start yet if the image it would
// install is not the digest it asks for (ImageWanted): "" if it is, or
// if it asks none.
func otherImage(o *store.Order, ns *needs) string {
	if o.ImageWanted == "" || strings.EqualFold(o.ImageWanted, ns.image) {
		return ""
	}
	name := o.Image
	if name == "" {
		name = o.Values["image"]
	}
	is := "has no digest"
	if ns.image != "" {
		is = "is " + ref(strings.ToLower(ns.image))
	}
	return fmt.Sprintf("the order asks image %s as %s, but the site's image %s %s: waiting until the site's image is the one asked",
		name, ref(strings.ToLower(o.ImageWanted)), name, is)
}

// waitImage stores order o waiting for its image to be the digest it
// asks for, with the reason.
func waitImage(tx *store.Tx, o *store.Order, reason string, wr store.Write) error {
	o.State, o.Workflow, o.Jobs = store.OrderWaiting, "", nil
	o.Reason, o.WaitingFor = reason, []string{o.ImageWanted}
	if err := tx.UnsafePut(o, wr); err != nil {
		return err
	}
	return event(tx, wr, store.Event{MachineID: o.MachineID, Kind: "order.waiting",
		Message: fmt.Sprintf("order %s waits: %s", o.ID, o.Reason),
		Fields:  map[string]string{"order": o.ID, "action": o.Action, "sha256": o.ImageWanted}})
}

// waitingReason says what an order waits for: the first artifact
// missing, and where its pull stands (the leader's latest report).
func waitingReason(tx *store.Tx, missing []need) string {
	n := missing[0]
	what := "image " + n.image
	if n.role != "image" {
		what = fmt.Sprintf("the %s of installer %s", n.role, n.image)
	}
	status, size := "waiting for the leader to pull it", n.size
	if rec, err := store.Get[store.Artifact](tx, n.digest); err == nil {
		if rec.Size > 0 {
			size = rec.Size
		}
		if p := rec.Pull; p != nil {
			switch {
			case p.Error != "":
				status = fmt.Sprintf("the pull from %s failed: %s", p.Source, p.Error)
			case p.Percent() >= 0:
				status = fmt.Sprintf("pulling from %s, %d %%", p.Source, p.Percent())
			default:
				status = fmt.Sprintf("pulling from %s, %s received", p.Source, sizeText(p.Held))
			}
		}
	}
	reason := fmt.Sprintf("%s (%s, %s) is not at the site yet: %s", what, ref(n.digest), sizeText(size), status)
	if len(missing) > 1 {
		reason += fmt.Sprintf(" (and %d more artifacts)", len(missing)-1)
	}
	if len(reason) > maxReason {
		reason = reason[:maxReason-3] + "..."
	}
	return reason
}

// reviewWaiting looks at every waiting order, in the order they were
// placed: each starts, fails or waits on (its reason brought up to date).
func reviewWaiting(tx *store.Tx, wr store.Write) error {
	orders, err := tx.WaitingOrders()
	if err != nil {
		return err
	}
	for _, o := range orders {
		if err := reviewOrder(tx, o, wr); err != nil {
			return err
		}
	}
	return nil
}

// reviewOrder starts waiting order o if everything it needs is at the
// site, fails it if it can no longer start, and otherwise updates why
// it waits. Only a storage failure is returned.
func reviewOrder(tx *store.Tx, o *store.Order, wr store.Write) error {
	m, err := orderMachine(tx, o)
	var ns *needs
	if err == nil {
		ns, err = orderNeeds(tx, o, m)
	}
	if err != nil {
		return failWaiting(tx, o, err, wr)
	}
	if reason := otherImage(o, ns); reason != "" {
		if reason == o.Reason {
			return nil
		}
		o.Reason, o.WaitingFor = reason, []string{o.ImageWanted}
		return tx.UnsafePut(o, wr)
	}
	if missing := ns.missing(tx); len(missing) > 0 {
		reason, waitingFor := waitingReason(tx, missing), digests(missing)
		if reason == o.Reason && slices.Equal(waitingFor, o.WaitingFor) {
			return nil
		}
		o.Reason, o.WaitingFor = reason, waitingFor
		return tx.UnsafePut(o, wr)
	}
	o.ImageSHA256 = ns.image
	if err := startOrder(tx, o, m, wr, chooseBootAddress, "order.started"); err != nil {
		return failWaiting(tx, o, err, wr)
	}
	return nil
}

// failWaiting ends waiting order o, which cannot start because of err,
// a domain error that wrote nothing; any other error is returned.
func failWaiting(tx *store.Tx, o *store.Order, err error, wr store.Write) error {
	if _, ok := errs.AsError(err); !ok || errors.Is(err, store.ErrCorrupt) {
		return err
	}
	o.State, o.Workflow, o.Jobs, o.WaitingFor = store.OrderFailed, "", nil, nil
	o.Reason = "cannot start: " + err.Error()
	if len(o.Reason) > maxReason {
		o.Reason = o.Reason[:maxReason-3] + "..."
	}
	if err := tx.UnsafePut(o, wr); err != nil {
		return err
	}
	return event(tx, wr, store.Event{MachineID: o.MachineID, Kind: "order.failed",
		Message: fmt.Sprintf("order %s failed: %s", o.ID, o.Reason),
		Fields:  map[string]string{"order": o.ID, "action": o.Action}})
}

// applyReportArtifact records the leader's note on a transfer of an
// artifact: an event (artifact.pulling, artifact.corrupt,
// artifact.failed) and, until a node holds the artifact, the record's
// Pull and the reasons of the orders that wait for it. Progress of an
// artifact present already is stale and changes nothing; a digest no
// record names is refused.
func applyReportArtifact(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req ArtifactReport
	command.MustDecode(payload, &req, index)
	if err := req.validate(); err != nil {
		return nil, err
	}
	rec, err := recordOf(tx, req.SHA256)
	if err != nil {
		return nil, err
	}
	present := len(rec.Nodes) > 0
	if present && req.Kind == ArtifactPulling {
		return rec, nil
	}
	wr := store.Write{Index: index, Time: req.Time, By: req.By}
	if !present {
		rec.Pull = &store.ArtifactPull{Node: req.Node, Source: req.Source, Held: req.Held, Size: req.Size, Time: req.Time}
		if req.Kind != ArtifactPulling {
			rec.Pull.Error = req.Message
		}
		if err := tx.UnsafePut(rec, wr); err != nil {
			return nil, err
		}
	}
	if err := event(tx, wr, reportEvent(rec, &req)); err != nil {
		return nil, err
	}
	if present {
		return rec, nil
	}
	return rec, reviewWaiting(tx, wr)
}

// validate checks a report.
func (r *ArtifactReport) validate() error {
	h := ArtifactHeld{Node: r.Node, SHA256: r.SHA256}
	switch err := h.validate(); {
	case err != nil:
		return err
	case r.Kind != ArtifactPulling && r.Kind != ArtifactCorrupt && r.Kind != ArtifactFailed:
		return errs.Invalid("kind", "%q is not one of %s, %s, %s", clip(r.Kind), ArtifactPulling, ArtifactCorrupt, ArtifactFailed)
	case r.Source == "":
		return errs.Invalid("source", "is required")
	case r.Held < 0 || r.Size < 0:
		return errs.Invalid("held_bytes", "the byte counts must not be negative")
	case len(r.Message) > maxReason || len(r.Source) > 256:
		return errs.Invalid("message", "is longer than %d bytes", maxReason)
	case r.Kind != ArtifactPulling && r.Message == "":
		return errs.Invalid("message", "is required: a %s report says what went wrong", r.Kind)
	}
	return nil
}

// reportEvent is the event of a report.
func reportEvent(rec *store.Artifact, r *ArtifactReport) store.Event {
	what := ref(rec.SHA256)
	if len(rec.Names) > 0 {
		what += fmt.Sprintf(" (%s)", joinNames(rec.Names))
	}
	e := store.Event{Kind: "artifact." + r.Kind, Fields: artifactFields(rec, r.Node)}
	e.Fields["source"] = r.Source
	switch r.Kind {
	case ArtifactPulling:
		p := store.ArtifactPull{Held: r.Held, Size: r.Size}
		progress := sizeText(r.Held) + " received"
		if pct := p.Percent(); pct >= 0 {
			progress = fmt.Sprintf("%d %% (%s of %s)", pct, sizeText(r.Held), sizeText(r.Size))
			e.Fields["percent"] = fmt.Sprint(pct)
		}
		e.Message = fmt.Sprintf("node %s is pulling artifact %s from %s: %s", r.Node, what, r.Source, progress)
	case ArtifactCorrupt:
		e.Message = fmt.Sprintf("node %s threw away a corrupt transfer of artifact %s from %s, and will fetch it again: %s", r.Node, what, r.Source, r.Message)
	case ArtifactFailed:
		e.Message = fmt.Sprintf("node %s could not pull artifact %s from %s: %s", r.Node, what, r.Source, r.Message)
	}
	if len(e.Message) > 4096 {
		e.Message = e.Message[:4093] + "..."
	}
	return e
}

func joinNames(names []string) string {
	if len(names) > 3 {
		return fmt.Sprintf("%s, %s, %s and %d more", names[0], names[1], names[2], len(names)-3)
	}
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}
