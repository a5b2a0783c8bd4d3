package lab

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// redfishHost is the machine behind a Redfish BMC: a QEMU VM
// (redfishVM) or a power state in memory (memHost).
type redfishHost interface {
	powerState() string
	// reset does a ComputerSystem.Reset, booting target first should it
	// boot; booted reports whether it began a boot.
	reset(ctx context.Context, typ, target string, once bool) (booted bool, err error)
	// setBoot applies a new boot override's target to a running machine.
	setBoot(ctx context.Context, target string) error
	insert(ctx context.Context, file string) error
	eject(ctx context.Context) error
}

// memHost is a machine that is only a power state.
type memHost struct {
	mu    sync.Mutex
	power string
}

func (h *memHost) powerState() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.power
}

func (h *memHost) reset(_ context.Context, typ, _ string, _ bool) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch typ {
	case "ForceOff", "GracefulShutdown":
		h.power = "Off"
		return false, nil
	case "On", "ForceOn":
		if h.power == "On" {
			return false, nil
		}
	}
	h.power = "On"
	return true, nil
}

func (h *memHost) setBoot(context.Context, string) error { return nil }
func (h *memHost) insert(context.Context, string) error  { return nil }
func (h *memHost) eject(context.Context) error           { return nil }

// redfishMedia is the virtual CD drive's state.
type redfishMedia struct {
	Image    string // the URL it was inserted from
	Inserted bool
}

const (
	redfishManager = "/redfish/v1/Managers/1"
	redfishCD      = redfishManager + "/VirtualMedia/Cd"
	// maxMedia bounds an image the BMC fetches.
	maxMedia = 4 << 30
)

// Media is the virtual CD drive's image URL and whether it is inserted.
func (b *RedfishBMC) Media() (image string, inserted bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.media.Image, b.media.Inserted
}

// BootOrder is the running VM's boot devices in the order its firmware
// boots them at the next reset, as QEMU has them (qom-get bootindex):
// "rf-nic", "rf-disk0", ..., "rf-cd". It fails without a running VM.
func (b *RedfishBMC) BootOrder(ctx context.Context) ([]string, error) {
	if b.vm == nil {
		return nil, fmt.Errorf("lab: Redfish BMC: no VM")
	}
	byIndex := map[int]string{}
	for _, id := range b.vm.order {
		n, err := b.vm.bootIndex(ctx, id)
		if err != nil {
			return nil, err
		}
		byIndex[n] = id
	}
	var out []string
	for i := 1; i <= len(b.vm.order); i++ {
		if id, ok := byIndex[i]; ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// serveManager answers the manager's resources: the BMC itself and its
// virtual CD drive.
func (b *RedfishBMC) serveManager(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	get := r.Method == http.MethodGet
	switch {
	case path == "/redfish/v1/Managers" && get:
		redfishJSON(w, http.StatusOK, map[string]any{"@odata.id": "/redfish/v1/Managers", "@odata.type": "#ManagerCollection.ManagerCollection",
			"Name": "Manager Collection", "Members": []any{odataID(redfishManager)}, "Members@odata.count": 1})
	case path == redfishManager && get:
		redfishJSON(w, http.StatusOK, map[string]any{"@odata.id": redfishManager, "@odata.type": "#Manager.v1_5_0.Manager",
			"Id": "1", "Name": "Lab BMC", "ManagerType": "BMC", "Status": map[string]string{"State": "Enabled", "Health": "OK"},
			"VirtualMedia": odataID(redfishManager + "/VirtualMedia"),
			"Links":        map[string]any{"ManagerForServers": []any{odataID(redfishSystem)}}})
	case path == redfishManager+"/VirtualMedia" && get:
		redfishJSON(w, http.StatusOK, map[string]any{"@odata.id": redfishManager + "/VirtualMedia", "@odata.type": "#VirtualMediaCollection.VirtualMediaCollection",
			"Name": "Virtual Media Collection", "Members": []any{odataID(redfishCD)}, "Members@odata.count": 1})
	case path == redfishCD && get:
		redfishJSON(w, http.StatusOK, b.virtualMedia())
	case path == redfishCD+"/Actions/VirtualMedia.InsertMedia" && r.Method == http.MethodPost:
		b.insertMedia(w, r, body)
	case path == redfishCD+"/Actions/VirtualMedia.EjectMedia" && r.Method == http.MethodPost:
		b.ejectMedia(w, r)
	default:
		redfishError(w, http.StatusNotFound, "Base.1.0.ResourceMissingAtURI", "no resource at "+r.Method+" "+path)
	}
}

func (b *RedfishBMC) virtualMedia() map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	via, name := "NotConnected", ""
	if b.media.Inserted {
		via = "URI"
		if u, err := url.Parse(b.media.Image); err == nil {
			name = filepath.Base(u.Path)
		}
	}
	return map[string]any{"@odata.id": redfishCD, "@odata.type": "#VirtualMedia.v1_3_0.VirtualMedia",
		"Id": "Cd", "Name": "Virtual CD", "MediaTypes": []string{"CD", "DVD"},
		"Image": b.media.Image, "ImageName": name, "Inserted": b.media.Inserted, "WriteProtected": true,
		"ConnectedVia": via, "TransferProtocolType": "HTTP",
		"Actions": map[string]any{
			"#VirtualMedia.InsertMedia": map[string]string{"target": redfishCD + "/Actions/VirtualMedia.InsertMedia"},
			"#VirtualMedia.EjectMedia":  map[string]string{"target": redfishCD + "/Actions/VirtualMedia.EjectMedia"},
		}}
}

// insertMedia fetches the image at the request's URL into a file and
// puts it in the drive. A request that is not an HTTP(S) URL, or whose
// image cannot be fetched, is refused and changes nothing.
func (b *RedfishBMC) insertMedia(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Image          string
		Inserted       *bool
		WriteProtected *bool
	}
	if err := json.Unmarshal(body, &req); err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.0.MalformedJSON", err.Error())
		return
	}
	u, err := url.Parse(req.Image)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		redfishError(w, http.StatusBadRequest, "Base.1.0.ActionParameterValueFormatError", fmt.Sprintf("Image %q is not an http or https URL", req.Image))
		return
	}
	if req.WriteProtected != nil && !*req.WriteProtected {
		redfishError(w, http.StatusBadRequest, "Base.1.0.ActionParameterValueNotInList", "WriteProtected false: the CD drive is read-only")
		return
	}
	b.op.Lock()
	defer b.op.Unlock()
	file, err := b.fetchMedia(r.Context(), req.Image)
	if err == nil && (req.Inserted == nil || *req.Inserted) {
		err = b.host.insert(r.Context(), file)
	}
	if err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.0.ActionParameterValueError", "insert "+req.Image+": "+err.Error())
		return
	}
	b.mu.Lock()
	b.media = redfishMedia{Image: req.Image, Inserted: req.Inserted == nil || *req.Inserted}
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// fetchMedia downloads an image, from the BMC's namespace, into a new
// file. As many BMCs do by default, it does not verify an HTTPS
// server's certificate (VerifyCertificate false).
func (b *RedfishBMC) fetchMedia(ctx context.Context, image string) (string, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if b.netns != nil {
		tr.DialContext = b.netns.DialContext
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, image, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET: %s", resp.Status)
	}
	f, err := os.CreateTemp(b.dir, "media-*.iso")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, maxMedia+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > maxMedia {
		err = fmt.Errorf("larger than %d bytes", maxMedia)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// ejectMedia empties the drive; an empty drive stays empty.
func (b *RedfishBMC) ejectMedia(w http.ResponseWriter, r *http.Request) {
	b.op.Lock()
	defer b.op.Unlock()
	if err := b.host.eject(r.Context()); err != nil {
		redfishError(w, http.StatusInternalServerError, "Base.1.0.InternalError", "eject: "+err.Error())
		return
	}
	b.mu.Lock()
	b.media = redfishMedia{}
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
