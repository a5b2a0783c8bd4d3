package httpboot

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"text/template"

	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Script variants: what a machine is told to do. Each has a template
// templates/<variant>.ipxe.
const (
	variantInstall     = "install"     // boot the installer to provision or wipe the machine
	variantProvisioned = "provisioned" // boot the local disk
	variantHold        = "hold"        // nothing to do: back to the firmware
	variantDiscover    = "discover"    // unknown MAC: the installer reports the hardware
	variantUnknown     = "unknown"     // unknown MAC, site says exit: back to the firmware
	variantError       = "error"       // something is wrong: say what, wait, fetch the script again
)

//go:embed templates/*.ipxe
var templateFS embed.FS

var scriptTemplates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFS, "templates/*.ipxe"))

// variantFor is the script for a known machine in state st. Provisioning
// and deprovisioning both run the installer (its workflow installs or
// wipes); states with nothing to boot, and any state this code does not
// know, hand the machine back to its firmware.
func variantFor(st store.MachineState) string {
	switch st {
	case store.StateProvisioning, store.StateDeprovisioning:
		return variantInstall
	case store.StateProvisioned:
		return variantProvisioned
	default: // ready, discovered, failed
		return variantHold
	}
}

// scriptData is what a template renders. Every field is checked by
// (*scriptData).check before rendering.
type scriptData struct {
	Variant string
	Base    string // http://host[:port] of the appliance
	MAC     string
	// Machine and State are the known machine's id and state; Machine is
	// empty for an unknown MAC.
	Machine string
	State   string
	// Platform is "pcbios", "efi", or "" when the request did not say (the
	// script then decides at boot time).
	Platform string
	// Image, Kernel, Initrd, InitrdName and Cmdline describe the installer
	// for install and discover: the image's name, the URLs iPXE fetches,
	// the initrd's image name in iPXE (for the kernel's initrd= under UEFI)
	// and the image's extra kernel arguments.
	Image      string
	Kernel     string
	Initrd     string
	InitrdName string
	Cmdline    string
	// Token is the agent's credential for install and discover: its
	// workflow's, or the MAC's discovery credential.
	Token string
	// Traceparent is the installing workflow's W3C traceparent, put on
	// the installer's kernel command line (outpost.traceparent) so that
	// the agent's spans join the provision's trace; empty when the
	// workflow has none.
	Traceparent string
	// Problem is the error variant's message.
	Problem string
	// Retry is the URL the script fetches itself from again, with iPXE's
	// own ${buildarch} and ${platform}.
	Retry string
	// GRUBKernel, GRUBInitrd and GRUBRetry are the installer's kernel and
	// initrd and the machine's own configuration as GRUB fetches them
	// (TFTP paths), CmdlineArgs the image's extra kernel arguments as
	// words: GRUB's templates (grub.go) only.
	GRUBKernel  string
	GRUBInitrd  string
	GRUBRetry   string
	CmdlineArgs []string
	// arch is the machine's architecture as its request reveals it
	// (store.ArchX86 or store.ArchARM64): which installer it boots.
	arch string
}

// serveBootScript serves /ipxe/boot.ipxe?mac=..&arch=..&platform=..
func (s *Server) serveBootScript(w http.ResponseWriter, r *http.Request) {
	s.serveScript(w, r, r.URL.Query().Get("mac"))
}

// serveMACScript serves /ipxe/{mac}.ipxe.
func (s *Server) serveMACScript(w http.ResponseWriter, r *http.Request) {
	mac, ok := strings.CutSuffix(r.PathValue("file"), ".ipxe")
	if !ok {
		notFound(w, r)
		return
	}
	s.serveScript(w, r, mac)
}

func (s *Server) serveScript(w http.ResponseWriter, r *http.Request, rawMAC string) {
	br, err := parseBootRequest(r, rawMAC)
	if err != nil {
		s.log.Warn("ipxe script: bad request", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	log := s.log.With("mac", br.mac, "remote", r.RemoteAddr)
	d, err := s.plan(r.Context(), br, log)
	if err != nil {
		// The store failed: the detail goes to the log, the machine gets
		// a script that retries.
		log.Error("ipxe script", "err", err)
		d = errorScript(br, "the appliance could not read its store, see its log")
	}
	if err := d.check(); err != nil {
		log.Error("ipxe script: unsafe value", "variant", d.Variant, "err", err)
		d = errorScript(br, "the appliance refused to render an unsafe script, see its log")
	}
	var buf bytes.Buffer
	if err := s.scripts.ExecuteTemplate(&buf, d.Variant+".ipxe", d); err != nil {
		log.Error("ipxe script: render", "variant", d.Variant, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	log.Info("ipxe script", "variant", d.Variant, "machine", d.Machine, "state", d.State,
		"image", d.Image, "arch", br.arch, "platform", br.platform, "problem", d.Problem)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}

// plan reads what the script for br depends on, in one transaction, and
// chooses the variant. A workflow that br's address may claim
// (BindFirstClaim) is claimed after that transaction.
func (s *Server) plan(ctx context.Context, br bootRequest, log *slog.Logger) (*scriptData, error) {
	d := newScript(br)
	var claim *store.Workflow
	err := s.db.View(func(tx *store.Tx) error {
		m, err := tx.MachineByMAC(br.mac)
		switch {
		case errors.Is(err, errs.ErrNotFound):
			return s.planUnknown(tx, d, br.addr)
		case err != nil:
			return fmt.Errorf("machine by mac %s: %w", br.mac, err)
		}
		d.Machine, d.State, d.Variant = m.ID, string(m.State), variantFor(m.State)
		if d.Variant == variantInstall {
			claim, err = s.planInstall(tx, d, m, br.addr)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if claim != nil {
		s.claim(ctx, d, claim, br.addr, log)
	}
	return d, nil
}

// planUnknown applies the site's policy for a MAC it does not know: a
// discovery credential for the address the MAC leases (BindLease), or for
// whichever address asks (BindFirstClaim), which it is bound to.
func (s *Server) planUnknown(tx *store.Tx, d *scriptData, addr netip.Addr) error {
	set, err := tx.Settings()
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if set.UnknownMachines == "exit" {
		d.Variant = variantUnknown
		return nil
	}
	d.Variant = variantDiscover
	if err := planInstaller(tx, d); err != nil || d.Variant == variantError {
		return err
	}
	now := s.now()
	if s.binding == provision.BindLease {
		mac, err := provision.LeasedMAC(tx, addr, now)
		if err != nil {
			return err
		}
		if mac != d.MAC {
			s.withhold(d, kindDiscovery, fmt.Sprintf("no active lease of this appliance gives %s to MAC %s, so it gets no discovery credential", addr, d.MAC))
			return nil
		}
	}
	d.Token = s.creds.Discovery(d.MAC, addr, now.Add(s.ttl))
	return nil
}

// planInstall boots the installer for machine m's current workflow, with
// that workflow's credential if addr may have it (provision.Admits). It
// returns the workflow if addr may claim it first.
func (s *Server) planInstall(tx *store.Tx, d *scriptData, m *store.Machine, addr netip.Addr) (claim *store.Workflow, err error) {
	w, err := store.Get[store.Workflow](tx, m.Workflow)
	switch {
	case errors.Is(err, errs.ErrNotFound) || (err == nil && !w.Active()):
		d.Variant, d.Problem = variantError, "the machine is "+string(m.State)+" but has no active workflow"
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("workflow of %s: %w", m.ID, err)
	}
	if err := planInstaller(tx, d); err != nil || d.Variant == variantError {
		return nil, err
	}
	d.Traceparent = w.Traceparent
	ok, err := provision.Admits(tx, w, addr, s.now())
	switch {
	case err != nil:
		return nil, err
	case ok:
		d.Token = s.creds.Workflow(w)
	case s.binding == provision.BindFirstClaim && provision.Claimable(w):
		return w, nil
	default:
		s.withhold(d, kindWorkflow, notAdmitted(w, addr))
	}
	return nil, nil
}

// claim claims workflow w's credential for addr and puts it in d if the
// claim won.
func (s *Server) claim(ctx context.Context, d *scriptData, w *store.Workflow, addr netip.Addr, log *slog.Logger) {
	bound, err := s.binder.BindWorkflow(ctx, w.ID, addr)
	switch {
	case err != nil:
		log.Error("ipxe script: claim the workflow's credential", "workflow", w.ID, "err", err)
		d.Variant, d.Problem = variantError, "the appliance could not record which address the machine has, see its log"
	case bound.BootAddr != addr.String():
		s.withhold(d, kindWorkflow, notAdmitted(bound, addr))
	default:
		log.Info("ipxe script: workflow claimed", "workflow", w.ID, "machine", w.MachineID)
		d.Token = s.creds.Workflow(bound)
	}
}

// notAdmitted says why addr gets no credential for w.
func notAdmitted(w *store.Workflow, addr netip.Addr) string {
	if w.BootAddr != "" {
		return fmt.Sprintf("workflow %s is bound to another address, the first to claim it, so %s gets no installer credential", w.ID, addr)
	}
	return fmt.Sprintf("no active lease of this appliance gives %s to machine %s, so it gets no installer credential", addr, w.MachineID)
}

// withhold turns d into the error script saying why its credential is
// withheld, and counts it.
func (s *Server) withhold(d *scriptData, kind, problem string) {
	withheld.WithLabelValues(kind).Inc()
	d.Variant, d.Problem, d.Token = variantError, problem, ""
}

// planInstaller fills in the installer, or turns d into the error script
// when there is no usable one.
func planInstaller(tx *store.Tx, d *scriptData) error {
	img, problem, err := tx.InstallerFor(d.arch)
	if err != nil {
		return err
	}
	if problem == "" {
		problem = d.setInstaller(img)
	}
	if problem != "" {
		d.Variant, d.Problem = variantError, problem
	}
	return nil
}

func newScript(br bootRequest) *scriptData {
	return &scriptData{
		Base:     br.base,
		MAC:      br.mac,
		Platform: br.platform,
		Retry:    br.base + "/ipxe/boot.ipxe?mac=" + br.mac + "&arch=${buildarch}&platform=${platform}",
		arch:     storeArch(br.arch),
	}
}

// storeArch is the store's name of the architecture of a boot request's
// arch (iPXE's ${buildarch}, or what GRUB's request path reveals): arm64
// machines boot the aarch64 installer, every other (x86_64, i386 for
// undionly.kpxe, or none said) the x86_64 one.
func storeArch(arch string) string {
	if arch == "arm64" || arch == store.ArchARM64 {
		return store.ArchARM64
	}
	return store.ArchX86
}

// errorScript is the error variant for br.
func errorScript(br bootRequest, problem string) *scriptData {
	d := newScript(br)
	d.Variant, d.Problem = variantError, problem
	return d
}
