package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/vmedia"
	"github.com/outposthq/outpost/internal/artifact"
)

// Virtual media. The leader's insert_media job builds its order's boot
// ISO (vmedia.Build) and has the machine's BMC fetch it from this
// node's boot HTTP service at /vmedia/<random>.iso: a path nobody can
// guess, served while the order runs and removed, with its file, once
// the order has ended (or the node restarted). The ISO holds the
// workflow's credential, so its URL is a secret: it is never stored,
// logged, or put in an error or event.

// mediaPrefix is the route of the ISOs on the boot HTTP service.
const mediaPrefix = "/vmedia/"

// mediaConfig configures a mediaServer.
type mediaConfig struct {
	// DB is the site's store: the orders, workflows, machines, subnets
	// and installer image the ISOs are made from.
	DB *store.DB
	// Credentials makes the workflows' agent credentials.
	Credentials *provision.Credentials
	// Artifacts holds the installer's "sha256:" kernel and initrd;
	// ArtifactDir those named by a path.
	Artifacts   *artifact.Store
	ArtifactDir string
	// BootURL is this node's boot HTTP service as machines reach it: the
	// installer's outpost.url and the base of the media URLs. Empty: the
	// node serves no virtual media.
	BootURL string
	// Dir is where the ISOs are written (0700); emptied at start.
	Dir string
	// Build makes an ISO (vmedia.Build if nil).
	Build func(ctx context.Context, cfg vmedia.Config, out string) error
	Log   *slog.Logger
}

// mediaServer builds and serves the orders' boot ISOs.
type mediaServer struct {
	cfg  mediaConfig
	mu   sync.Mutex
	isos map[string]mediaISO // by the random name in the path
}

// mediaISO is one served ISO.
type mediaISO struct {
	order, workflow, file string
}

// newMediaServer empties cfg.Dir, whose ISOs no URL names any more.
func newMediaServer(cfg mediaConfig) (*mediaServer, error) {
	if cfg.Build == nil {
		cfg.Build = vmedia.Build
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("vmedia: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("vmedia: %w", err)
	}
	return &mediaServer{cfg: cfg, isos: map[string]mediaISO{}}, nil
}

// URL builds the boot ISO of job j's order and returns the URL it is
// served at. Its errors never hold the URL.
func (s *mediaServer) URL(ctx context.Context, j *store.Job) (string, error) {
	if s == nil || s.cfg.BootURL == "" {
		return "", errors.New("vmedia: this node serves no boot HTTP (boot_addr, boot_url), so no virtual media")
	}
	s.sweep()
	bc, w, err := s.bootConfig(j)
	if err != nil {
		return "", err
	}
	// The file is not named as the URL is: the name of a file may be in
	// an error (xorriso's), which a job keeps.
	name, file := randomName(), filepath.Join(s.cfg.Dir, randomName()+".iso")
	if err := s.cfg.Build(ctx, bc, file); err != nil {
		os.Remove(file)
		return "", fmt.Errorf("build the boot ISO of order %s: %w", j.Order, err)
	}
	s.mu.Lock()
	s.isos[name] = mediaISO{order: j.Order, workflow: w.ID, file: file}
	s.mu.Unlock()
	s.cfg.Log.Info("vmedia: boot ISO built", "order", j.Order, "machine", j.MachineID, "workflow", w.ID)
	return strings.TrimSuffix(s.cfg.BootURL, "/") + mediaPrefix + name + ".iso", nil
}

func randomName() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP serves GET and HEAD /vmedia/<name>.iso while its order
// runs; 404 for any other name, without saying which.
func (s *mediaServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, mediaPrefix), ".iso")
	s.mu.Lock()
	iso, known := s.isos[name]
	s.mu.Unlock()
	if !ok || !known || !s.live(iso) {
		s.sweep()
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/x-iso9660-image")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeFile(w, r, iso.file)
}

// live reports whether iso's order still runs, with the workflow the
// ISO was made for.
func (s *mediaServer) live(iso mediaISO) bool {
	var running bool
	s.cfg.DB.View(func(tx *store.Tx) error {
		o, err := store.Get[store.Order](tx, iso.order)
		running = err == nil && !o.Done() && o.Workflow == iso.workflow
		return nil
	})
	return running
}

// sweep forgets, and removes, the ISOs of orders that have ended.
func (s *mediaServer) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, iso := range s.isos {
		if !s.live(iso) {
			os.Remove(iso.file)
			delete(s.isos, name)
		}
	}
}

// bootConfig is the ISO of job j's order: the installer, the
// parameters of the order's workflow with its credential, and the
// static network of the machine's boot interface on its subnet.
func (s *mediaServer) bootConfig(j *store.Job) (vmedia.Config, *store.Workflow, error) {
	var bc vmedia.Config
	var w *store.Workflow
	err := s.cfg.DB.View(func(tx *store.Tx) error {
		o, err := store.Get[store.Order](tx, j.Order)
		if err != nil || o.Workflow == "" {
			return fmt.Errorf("vmedia: job %s has no order with a workflow", j.ID)
		}
		if w, err = store.Get[store.Workflow](tx, o.Workflow); err != nil {
			return fmt.Errorf("vmedia: workflow %s of order %s: %w", o.Workflow, o.ID, err)
		}
		m, err := store.Get[store.Machine](tx, o.MachineID)
		if err != nil {
			return fmt.Errorf("vmedia: machine %s: %w", o.MachineID, err)
		}
		iface, net, err := staticNetwork(tx, m)
		if err != nil {
			return err
		}
		img, problem, err := tx.Installer()
		if err != nil {
			return err
		} else if problem != "" {
			return fmt.Errorf("vmedia: %s", problem)
		}
		if bc.Kernel, err = s.installerFile("kernel", img.Kernel); err != nil {
			return err
		}
		if bc.Initrd, err = s.installerFile("initrd", img.Initrd); err != nil {
			return err
		}
		bc.Network = net
		bc.Params = [][2]string{{agentproto.ParamURL, s.cfg.BootURL}, {agentproto.ParamMachine, m.ID},
			{agentproto.ParamMAC, iface.MAC}, {agentproto.ParamToken, s.cfg.Credentials.Workflow(w)}}
		if w.Traceparent != "" {
			bc.Params = append(bc.Params, [2]string{agentproto.ParamTraceparent, w.Traceparent})
		}
		extra, err := cmdlineParams(img)
		bc.Params = append(bc.Params, extra...)
		return err
	})
	return bc, w, err
}

// staticNetwork is machine m's boot interface and its static network:
// the interface's address on its subnet, with the subnet's gateway,
// DNS and domain.
func staticNetwork(tx *store.Tx, m *store.Machine) (store.Interface, vmedia.Network, error) {
	var iface store.Interface
	for k, f := range m.Interfaces {
		if f.Boot || k == 0 {
			iface = f
		}
	}
	ip, err := netip.ParseAddr(iface.IP)
	if err != nil {
		return iface, vmedia.Network{}, fmt.Errorf("vmedia: machine %s's boot interface has no address", m.ID)
	}
	subnets, err := store.List[store.Subnet](tx)
	if err != nil {
		return iface, vmedia.Network{}, err
	}
	for _, sub := range subnets {
		if sub.Prefix().Contains(ip) && (iface.Subnet == "" || iface.Subnet == sub.Name) {
			n := vmedia.Network{Address: netip.PrefixFrom(ip, sub.Prefix().Bits()), Domain: sub.Domain}
			n.Gateway, _ = netip.ParseAddr(sub.Gateway)
			for _, d := range sub.DNS {
				if a, err := netip.ParseAddr(d); err == nil {
					n.DNS = append(n.DNS, a)
				}
			}
			return iface, n, nil
		}
	}
	return iface, vmedia.Network{}, fmt.Errorf("vmedia: no subnet holds machine %s's address %s", m.ID, ip)
}

// installerFile is the local file of the installer's kernel or initrd
// ref: an artifact this node holds, or a file of the artifact
// directory. One at an http(s) URL cannot go on an ISO yet.
func (s *mediaServer) installerFile(what, ref string) (string, error) {
	if artifact.IsRef(ref) {
		d, _ := artifact.ParseDigest(ref)
		if s.cfg.Artifacts == nil {
			return "", fmt.Errorf("vmedia: installer %s %s: this node keeps no artifacts", what, d.Short())
		}
		if _, ok := s.cfg.Artifacts.Stat(d); !ok {
			return "", fmt.Errorf("vmedia: installer %s %s is not on this node yet", what, d.Short())
		}
		return filepath.Join(s.cfg.Artifacts.Dir(), "sha256", string(d)), nil
	}
	if strings.Contains(ref, "://") {
		return "", fmt.Errorf("vmedia: installer %s is a URL: only an artifact or a file of the artifact directory goes on an ISO", what)
	}
	if !filepath.IsLocal(ref) || s.cfg.ArtifactDir == "" {
		return "", fmt.Errorf("vmedia: installer %s %q is not a file of the artifact directory", what, ref)
	}
	return filepath.Join(s.cfg.ArtifactDir, ref), nil
}

// cmdlineParams are the installer image's extra kernel arguments
// (Image.Cmdline), each name=value: the ISO's command line has no bare
// words yet.
func cmdlineParams(img *store.Image) ([][2]string, error) {
	var out [][2]string
	for _, f := range strings.Fields(img.Cmdline) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("vmedia: installer image %s's cmdline has %q, not name=value, which an ISO cannot take yet", img.Name, f)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}
