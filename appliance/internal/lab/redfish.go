package lab

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// RedfishBMCConfig describes a Redfish BMC.
type RedfishBMCConfig struct {
	// Netns is the namespace it listens in; nil listens in the test's
	// own.
	Netns *Netns
	// Addr is the listen address. Default 127.0.0.1:0.
	Addr string
	// Username and Password are the one user's. Default "admin" and a
	// random password.
	Username, Password string
	// Certificate is what it presents. Default: a self-signed one for
	// the listen address, as a BMC makes for itself.
	Certificate *tls.Certificate
	// VM, if set, is the QEMU command line (VMCommand's) of the machine
	// the BMC owns: it starts QEMU in Netns on power on, with a QMP
	// socket and a CD-ROM drive of its own, and kills it on power off
	// (redfish_vm.go). Without it the machine is a power state in
	// memory.
	VM []string
	// VMNetns is the namespace QEMU runs in, the one its tap is in.
	// Default Netns.
	VMNetns *Netns
}

// RedfishBMC is a Redfish service over HTTPS, as much of one as bmclib's
// gofish provider, redfishtool and sushy use: the service root, the
// session service (a session made by POST, read, deleted at logout; HTTP
// Basic authentication too), one computer system with its power state,
// its reset action and its boot override, and one manager with a
// virtual CD drive (InsertMedia fetches the image over HTTP(S);
// EjectMedia). The system is a QEMU VM (RedfishBMCConfig.VM) or, without
// one, a power state in memory. It records every request it
// receives with whatever credentials it carried, so that a test can say
// who was given the password, and counts TLS handshakes.
type RedfishBMC struct {
	// Addr is where it listens, host:port.
	Addr               string
	Username, Password string

	srv   *http.Server
	host  redfishHost
	vm    *redfishVM // nil without a VM
	netns *Netns
	dir   string // holds the fetched media images

	// op is held by an action for its whole length (a power change, an
	// image fetched and inserted), one at a time as a BMC does them.
	op sync.Mutex

	mu         sync.Mutex
	cert       tls.Certificate
	handshakes int
	requests   []RedfishRequest
	sessions   map[string]string // token → session path
	nextID     int
	boot       map[string]string
	media      redfishMedia
}

// RedfishRequest is one request a RedfishBMC received.
type RedfishRequest struct {
	Method, Path string
	// Authorization is the Authorization header, Basic credentials
	// decoded ("user:password").
	Authorization string
	// Body is the request's body, as a session request carries the
	// username and password.
	Body string
}

const redfishSessions = "/redfish/v1/SessionService/Sessions"
const redfishSystem = "/redfish/v1/Systems/1"

// StartRedfishBMC starts a Redfish BMC, powered off; it stops when the
// test ends.
func StartRedfishBMC(t T, cfg RedfishBMCConfig) *RedfishBMC {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Username == "" {
		cfg.Username = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = randomPassword("rf-")
	}
	listen := net.Listen
	if cfg.Netns != nil {
		listen = cfg.Netns.Listen
	}
	ln, err := listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatalf("lab: Redfish BMC: %v", err)
	}
	b := &RedfishBMC{Addr: ln.Addr().String(), Username: cfg.Username, Password: cfg.Password,
		sessions: map[string]string{}, boot: map[string]string{}, host: &memHost{power: "Off"},
		netns: cfg.Netns, dir: t.TempDir()}
	if cfg.VM != nil {
		vmNetns := cfg.VMNetns
		if vmNetns == nil {
			vmNetns = cfg.Netns
		}
		vm, err := newRedfishVM(t, vmNetns, cfg.VM)
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		b.vm, b.host = vm, vm
	}
	if cfg.Certificate != nil {
		b.cert = *cfg.Certificate
	} else {
		host, _, _ := net.SplitHostPort(b.Addr)
		b.cert = SelfSigned(t, host)
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second,
		// Refused handshakes are what some tests are about: not noise.
		ErrorLog: log.New(io.Discard, "", 0)}
	tlsLn := tls.NewListener(ln, &tls.Config{GetCertificate: b.certificate, MinVersion: tls.VersionTLS12})
	go b.srv.Serve(tlsLn)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// certificate presents the current certificate and counts the handshake.
func (b *RedfishBMC) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handshakes++
	c := b.cert
	return &c, nil
}

// Certificate is what the BMC presents now.
func (b *RedfishBMC) Certificate() tls.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cert
}

// SetCertificate changes what the BMC presents from the next handshake
// on, as a BMC whose certificate was renewed, or an impostor, does.
func (b *RedfishBMC) SetCertificate(c tls.Certificate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cert = c
}

// Handshakes counts the TLS handshakes clients began.
func (b *RedfishBMC) Handshakes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handshakes
}

// Requests returns every request received, in order.
func (b *RedfishBMC) Requests() []RedfishRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]RedfishRequest(nil), b.requests...)
}

// PasswordSeen returns the requests that carried the password, in a
// session request's body or in an Authorization header.
func (b *RedfishBMC) PasswordSeen() []RedfishRequest {
	var out []RedfishRequest
	for _, r := range b.Requests() {
		if strings.Contains(r.Body, b.Password) || strings.Contains(r.Authorization, b.Password) {
			out = append(out, r)
		}
	}
	return out
}

// Power is the system's power state: "On" or "Off". With a VM, it is
// "On" while QEMU runs and its guest has not shut down (QMP
// query-status).
func (b *RedfishBMC) Power() string { return b.host.powerState() }

// BootOverride is the system's boot override: BootSourceOverrideTarget,
// BootSourceOverrideEnabled and BootSourceOverrideMode as last set.
func (b *RedfishBMC) BootOverride() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]string{}
	for k, v := range b.boot {
		out[k] = v
	}
	return out
}

// serve records the request, then answers it.
func (b *RedfishBMC) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rec := RedfishRequest{Method: r.Method, Path: r.URL.Path, Body: string(body)}
	if user, pass, ok := r.BasicAuth(); ok {
		rec.Authorization = user + ":" + pass
	} else {
		rec.Authorization = r.Header.Get("Authorization")
	}
	b.mu.Lock()
	b.requests = append(b.requests, rec)
	b.mu.Unlock()

	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/redfish/v1" && r.Method == http.MethodGet:
		redfishJSON(w, http.StatusOK, serviceRoot)
	case path == "/redfish" && r.Method == http.MethodGet:
		redfishJSON(w, http.StatusOK, map[string]string{"v1": "/redfish/v1/"})
	case path == redfishSessions && r.Method == http.MethodPost:
		b.login(w, body)
	case !b.authorized(r):
		redfishError(w, http.StatusUnauthorized, "Base.1.0.NoValidSession", "There is no valid session established with the implementation.")
	default:
		b.serveAuthorized(w, r, path, body)
	}
}

// serveAuthorized answers a request that carried a session or the
// user's credentials.
func (b *RedfishBMC) serveAuthorized(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	switch {
	case path == "/redfish/v1/SessionService" && r.Method == http.MethodGet:
		redfishJSON(w, http.StatusOK, map[string]any{"@odata.id": "/redfish/v1/SessionService", "@odata.type": "#SessionService.v1_1_8.SessionService",
			"Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "Sessions": odataID(redfishSessions)})
	case path == redfishSessions && r.Method == http.MethodGet:
		b.listSessions(w)
	case strings.HasPrefix(path, redfishSessions+"/"):
		b.session(w, r, path)
	case path == "/redfish/v1/Systems" && r.Method == http.MethodGet:
		redfishJSON(w, http.StatusOK, map[string]any{"@odata.id": "/redfish/v1/Systems", "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
			"Name": "Computer System Collection", "Members": []any{odataID(redfishSystem)}, "Members@odata.count": 1})
	case path == redfishSystem && r.Method == http.MethodGet:
		redfishJSON(w, http.StatusOK, b.system())
	case path == redfishSystem && r.Method == http.MethodPatch:
		b.patchBoot(w, r, body)
	case path == redfishSystem+"/Actions/ComputerSystem.Reset" && r.Method == http.MethodPost:
		b.reset(w, r, body)
	case strings.HasPrefix(path, "/redfish/v1/Managers"):
		b.serveManager(w, r, path, body)
	default:
		redfishError(w, http.StatusNotFound, "Base.1.0.ResourceMissingAtURI", "no resource at "+r.Method+" "+path)
	}
}

var serviceRoot = map[string]any{
	"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
	"Id": "RootService", "Name": "Outpost lab Redfish BMC", "RedfishVersion": "1.6.0",
	"UUID":           "92384634-2938-2342-8820-489239905423",
	"Systems":        odataID("/redfish/v1/Systems"),
	"Managers":       odataID("/redfish/v1/Managers"),
	"SessionService": odataID("/redfish/v1/SessionService"),
	"Links":          map[string]any{"Sessions": odataID(redfishSessions)},
}

func odataID(path string) map[string]string { return map[string]string{"@odata.id": path} }

// authorized reports whether r has a live session's token or the user's
// Basic credentials.
func (b *RedfishBMC) authorized(r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok {
		return user == b.Username && pass == b.Password
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.sessions[r.Header.Get("X-Auth-Token")]
	return ok
}

// login makes a session for the right username and password.
func (b *RedfishBMC) login(w http.ResponseWriter, body []byte) {
	var req struct{ UserName, Password string }
	if err := json.Unmarshal(body, &req); err != nil || req.UserName != b.Username || req.Password != b.Password {
		redfishError(w, http.StatusUnauthorized, "Base.1.0.NoValidSession", "Invalid username or password")
		return
	}
	var tok [16]byte
	rand.Read(tok[:])
	b.mu.Lock()
	b.nextID++
	path := fmt.Sprintf("%s/%d", redfishSessions, b.nextID)
	b.sessions[hex.EncodeToString(tok[:])] = path
	b.mu.Unlock()
	w.Header().Set("X-Auth-Token", hex.EncodeToString(tok[:]))
	w.Header().Set("Location", path)
	redfishJSON(w, http.StatusCreated, sessionObject(path, req.UserName))
}

func sessionObject(path, user string) map[string]any {
	return map[string]any{"@odata.id": path, "@odata.type": "#Session.v1_0_0.Session",
		"Id": path[strings.LastIndex(path, "/")+1:], "Name": "User Session", "UserName": user}
}

func (b *RedfishBMC) listSessions(w http.ResponseWriter) {
	b.mu.Lock()
	var members []any
	for _, p := range b.sessions {
		members = append(members, odataID(p))
	}
	b.mu.Unlock()
	redfishJSON(w, http.StatusOK, map[string]any{"@odata.id": redfishSessions, "@odata.type": "#SessionCollection.SessionCollection",
		"Name": "Session Collection", "Members": members, "Members@odata.count": len(members)})
}

// session reads or deletes (logs out) one session.
func (b *RedfishBMC) session(w http.ResponseWriter, r *http.Request, path string) {
	b.mu.Lock()
	var token string
	for tok, p := range b.sessions {
		if p == path {
			token = tok
		}
	}
	if token != "" && r.Method == http.MethodDelete {
		delete(b.sessions, token)
	}
	b.mu.Unlock()
	switch {
	case token == "":
		redfishError(w, http.StatusNotFound, "Base.1.0.ResourceMissingAtURI", "no session "+path)
	case r.Method == http.MethodGet:
		redfishJSON(w, http.StatusOK, sessionObject(path, b.Username))
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		redfishError(w, http.StatusMethodNotAllowed, "Base.1.0.ActionNotSupported", r.Method+" "+path)
	}
}

// Boot override values the BMC takes.
var (
	redfishTargets = []string{"None", "Pxe", "Hdd", "Cd", "UefiHttp"}
	redfishEnabled = []string{"Disabled", "Once", "Continuous"}
	redfishModes   = []string{"UEFI", "Legacy"}
	redfishResets  = []string{"On", "ForceOn", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"}
)

// system is the computer system's resource.
func (b *RedfishBMC) system() map[string]any {
	power := b.host.powerState()
	b.mu.Lock()
	defer b.mu.Unlock()
	boot := map[string]any{"BootSourceOverrideTarget": "None", "BootSourceOverrideEnabled": "Disabled",
		"BootSourceOverrideTarget@Redfish.AllowableValues": redfishTargets}
	for k, v := range b.boot {
		boot[k] = v
	}
	return map[string]any{
		"@odata.id": redfishSystem, "@odata.type": "#ComputerSystem.v1_5_0.ComputerSystem",
		"Id": "1", "Name": "Lab system", "SystemType": "Physical", "PowerState": power, "Boot": boot,
		"Manufacturer": "Outpost lab", "Model": "QEMU",
		"Status": map[string]string{"State": "Enabled", "Health": "OK"},
		"Links":  map[string]any{"ManagedBy": []any{odataID(redfishManager)}},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            redfishSystem + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": redfishResets,
		}},
	}
}

// reset does a ComputerSystem.Reset action. A boot it begins spends a
// Once boot override.
func (b *RedfishBMC) reset(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct{ ResetType string }
	if err := json.Unmarshal(body, &req); err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.0.MalformedJSON", err.Error())
		return
	}
	if !slices.Contains(redfishResets, req.ResetType) {
		redfishError(w, http.StatusBadRequest, "Base.1.0.ActionParameterValueNotInList", "ResetType "+req.ResetType)
		return
	}
	b.op.Lock()
	defer b.op.Unlock()
	b.mu.Lock()
	target, once := b.overrideTarget()
	b.mu.Unlock()
	booted, err := b.host.reset(r.Context(), req.ResetType, target, once)
	if booted && once {
		b.mu.Lock()
		b.boot["BootSourceOverrideEnabled"] = "Disabled"
		b.boot["BootSourceOverrideTarget"] = "None"
		b.mu.Unlock()
	}
	if err != nil {
		redfishError(w, http.StatusInternalServerError, "Base.1.0.InternalError", "reset "+req.ResetType+": "+err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// overrideTarget is the boot override's target, "None" when it is
// disabled, and whether it is for one boot; b.mu is held.
func (b *RedfishBMC) overrideTarget() (target string, once bool) {
	switch b.boot["BootSourceOverrideEnabled"] {
	case "Once":
		return b.boot["BootSourceOverrideTarget"], true
	case "Continuous":
		return b.boot["BootSourceOverrideTarget"], false
	}
	return "None", false
}

// patchBoot sets the boot override. A value not in its list is refused,
// naming it, and changes nothing.
func (b *RedfishBMC) patchBoot(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct{ Boot map[string]any }
	if err := json.Unmarshal(body, &req); err != nil || req.Boot == nil {
		redfishError(w, http.StatusBadRequest, "Base.1.0.MalformedJSON", "want a Boot object")
		return
	}
	allowed := map[string][]string{"BootSourceOverrideTarget": redfishTargets,
		"BootSourceOverrideEnabled": redfishEnabled, "BootSourceOverrideMode": redfishModes}
	set := map[string]string{}
	// Other properties (read-only ones a client sends back, as gofish
	// does) are ignored.
	for k, v := range req.Boot {
		values, known := allowed[k]
		if !known {
			continue
		}
		if s, ok := v.(string); !ok || !slices.Contains(values, s) {
			redfishError(w, http.StatusBadRequest, "Base.1.0.PropertyValueNotInList", fmt.Sprintf("Boot.%s: %v is not one of %v", k, v, values))
			return
		}
		set[k] = v.(string)
	}
	b.op.Lock()
	defer b.op.Unlock()
	b.mu.Lock()
	for k, v := range set {
		b.boot[k] = v
	}
	target, _ := b.overrideTarget()
	b.mu.Unlock()
	if err := b.host.setBoot(r.Context(), target); err != nil {
		redfishError(w, http.StatusInternalServerError, "Base.1.0.InternalError", "boot order: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func redfishJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func redfishError(w http.ResponseWriter, code int, id, msg string) {
	redfishJSON(w, code, map[string]any{"error": map[string]any{"code": id, "message": msg}})
}
