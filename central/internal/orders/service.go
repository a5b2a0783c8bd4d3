package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Config configures a Service.
type Config struct {
	// Store is central's store: the sites' images, where orders are
	// placed, and the audit.
	Store *store.DB
	// Fleet answers which machines a query selects, their state and
	// their sites' links.
	Fleet fleet.Reader
	// Now is the clock batch ids are drawn by; nil means time.Now.
	Now func() time.Time
	// Rand draws the random part of a batch id; nil means 4 random
	// bytes in hex.
	Rand func() string
}

// Service places orders and reads the audit: a Placer and an Auditor.
type Service struct {
	db    *store.DB
	fleet fleet.Reader
	now   func() time.Time
	rand  func() string
}

var (
	_ Placer  = (*Service)(nil)
	_ Auditor = (*Service)(nil)
)

// Limits of a request.
const (
	// MaxMachines bounds the machines one request orders.
	MaxMachines = 10_000
	// pageSize is the page a query's machines are read in.
	pageSize = 1000
	// chunk is how many orders go in one apply (store.PlaceOrders), and
	// chunkBytes how many bytes of them at most: a Raft entry stays a
	// few MiB even when each order carries user data.
	chunk      = 2000
	chunkBytes = 4 << 20
)

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{db: cfg.Store, fleet: cfg.Fleet, now: cfg.Now, rand: cfg.Rand}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = func() string {
			b := make([]byte, 4)
			_, _ = rand.Read(b)
			return hex.EncodeToString(b)
		}
	}
	return s
}

// check checks a request on its own.
func (req *Request) check() error {
	switch req.Action {
	case ActionProvision, ActionDeprovision:
		if req.Params.Power != "" {
			return errs.Invalid("params.power", "is for a power order, not a %s", req.Action)
		}
	case ActionPower:
		switch req.Params.Power {
		case "on", "off", "cycle":
		case "":
			return errs.Invalid("params.power", "is required: on, off or cycle")
		default:
			return errs.Invalid("params.power", "%q is not one of on, off, cycle", clip(req.Params.Power))
		}
	case "":
		return errs.Invalid("action", "is required: provision, deprovision or power")
	default:
		return errs.Invalid("action", "%q is not one of provision, deprovision, power", clip(req.Action))
	}
	if req.Action != ActionProvision && (req.Params.Image != "" || req.Params.Hostname != "" || len(req.Params.SSHKeys) > 0 || req.Params.UserData != "") {
		return errs.Invalid("params", "image, hostname, ssh_keys and user_data are for a provision")
	}
	switch {
	case req.Query == "" && len(req.Targets) == 0:
		return errs.Invalid("query", "is required: a request names its machines by a query (site:* for every one) or by targets")
	case req.Query != "" && len(req.Targets) > 0:
		return errs.Invalid("targets", "a request names its machines by query or by targets, not both")
	case len(req.Targets) > MaxMachines:
		return errs.Invalid("targets", "lists %d machines, more than the limit of %d", len(req.Targets), MaxMachines)
	}
	for i, k := range req.Params.SSHKeys {
		if strings.ContainsAny(k, "\r\n") {
			return errs.Invalid(fmt.Sprintf("params.ssh_keys[%d]", i), "holds a line break: one key a line")
		}
	}
	return nil
}

// Preview resolves a request without changing anything: which machines,
// what each will do, which will wait for their offline site, and which
// are refused and why.
func (s *Service) Preview(ctx context.Context, req *Request) (*Preview, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	machines, err := s.machines(ctx, req)
	if err != nil {
		return nil, err
	}
	if req.Params.Hostname != "" && len(machines) > 1 {
		return nil, errs.Invalid("params.hostname", "names one machine's hostname, and the request selects %d machines", len(machines))
	}
	sites, err := s.sites()
	if err != nil {
		return nil, err
	}
	r := &resolver{db: s.db, name: req.Params.Image, digests: map[string]imageAt{}}
	p := &Preview{Action: req.Action, Items: make([]PreviewItem, 0, len(machines))}
	if req.Action == ActionProvision && req.Params.Image != "" {
		p.ImageSHA256 = r.catalogue()
	}
	for _, m := range machines {
		it := s.item(req, m, sites, r)
		if it.Problem != "" {
			p.Refused++
		}
		p.Items = append(p.Items, it)
		if at := r.digests[it.Site]; p.ImageSHA256 == "" && it.Problem == "" {
			p.ImageSHA256 = at.digest // no catalogue image: the first site's own
		}
	}
	return p, nil
}

// target is a machine a request names, and what the fleet knows of it
// (nil: nothing).
type target struct {
	ref TargetRef
	m   *fleet.Machine
}

// machines resolves the request's machines: every one its query matches
// (in the fleet's order), or its targets as listed.
func (s *Service) machines(ctx context.Context, req *Request) ([]target, error) {
	if len(req.Targets) > 0 {
		out := make([]target, 0, len(req.Targets))
		seen := make(map[TargetRef]bool, len(req.Targets))
		for i, ref := range req.Targets {
			if seen[ref] {
				return nil, errs.Invalid(fmt.Sprintf("targets[%d]", i), "names machine %s/%s twice", ref.Site, ref.Machine)
			}
			seen[ref] = true
			m, err := s.fleet.Machine(ref.Site, ref.Machine)
			if err != nil && !errors.Is(err, errs.ErrNotFound) {
				return nil, err
			}
			out = append(out, target{ref: ref, m: m})
		}
		return out, nil
	}
	var out []target
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		page, err := s.fleet.Machines(req.Query, pageSize, after)
		if err != nil {
			if _, ok := errs.AsError(err); ok {
				return nil, err
			}
			return nil, errs.Invalid("query", "%s", err.Error())
		}
		if page.Total > MaxMachines {
			return nil, errs.Invalid("query", "matches %d machines, more than the limit of %d a request orders: narrow it", page.Total, MaxMachines)
		}
		for _, m := range page.Machines {
			out = append(out, target{ref: TargetRef{Site: m.Site, Machine: m.ID}, m: m})
		}
		if page.Next == "" || len(page.Machines) == 0 {
			return out, nil
		}
		after = page.Next
	}
}

// sites returns the fleet's sites by id.
func (s *Service) sites() (map[string]*fleet.Site, error) {
	list, err := s.fleet.Sites()
	if err != nil {
		return nil, err
	}
	out := make(map[string]*fleet.Site, len(list))
	for _, st := range list {
		out[st.ID] = st
	}
	return out, nil
}

// item is the preview of one machine.
func (s *Service) item(req *Request, t target, sites map[string]*fleet.Site, r *resolver) PreviewItem {
	it := PreviewItem{TargetRef: t.ref}
	st := sites[t.ref.Site]
	if st == nil {
		it.Problem = fmt.Sprintf("no site %q", t.ref.Site)
		return it
	}
	it.Offline = !st.Link.Connected
	if t.m == nil {
		it.Problem = fmt.Sprintf("site %s has no machine %q", t.ref.Site, t.ref.Machine)
		return it
	}
	it.Hostname, it.State = t.m.Hostname, t.m.State
	var digest string
	if req.Action == ActionProvision {
		if req.Params.Image == "" {
			it.Problem = "a provision names the image to install"
			return it
		}
		at, err := r.at(t.ref.Site)
		switch {
		case err != nil:
			it.Problem = "image " + req.Params.Image + ": " + err.Error()
			return it
		case !at.found:
			it.Problem = fmt.Sprintf("image %s is not given to site %s: place it there first (the catalogue's placement, or the site's images)", req.Params.Image, t.ref.Site)
			return it
		}
		digest = at.digest
	}
	if o := t.m.LastOrder; o != nil && !ended(o.Status) {
		it.Problem = fmt.Sprintf("order %s is still %s for this machine: wait for it to end", o.Key, o.Status)
	}
	it.Will = will(req, digest)
	if it.Offline {
		it.Will += "; site " + t.ref.Site + " is offline: the order will be delivered when the site returns"
	}
	return it
}

// ended reports whether an order of that status has ended.
func ended(status string) bool {
	return status == fleet.OrderSucceeded || status == fleet.OrderFailed || status == ""
}

// will says in words what an order will do.
func will(req *Request, digest string) string {
	p := req.Params
	switch req.Action {
	case ActionPower:
		return "power " + p.Power
	case ActionDeprovision:
		return "wipe, then power off"
	}
	w := "install " + p.Image
	if digest != "" {
		w += " (" + shortDigest(digest) + ")"
	}
	if p.Template != "" {
		w += " with template " + p.Template
	}
	if p.Hostname != "" {
		w += " as " + p.Hostname
	}
	if n := len(p.SSHKeys); n > 0 {
		w += fmt.Sprintf(", %d SSH key%s", n, plural(n))
	}
	if p.UserData != "" {
		w += fmt.Sprintf(", user data (%d bytes)", len(p.UserData))
	}
	return w
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return "sha256:" + d[:12] + "…"
	}
	return "sha256:" + d
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// caller is the role of the request's caller, if the API put one in ctx.
func callerRole(ctx context.Context) string {
	c, _ := httpapi.CallerOf(ctx)
	return string(c.Role)
}
