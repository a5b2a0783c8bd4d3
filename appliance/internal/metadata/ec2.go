package metadata

import (
	"net/http"
	"strconv"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// ec2Root lists a version's top level.
func ec2Root(w http.ResponseWriter, _ *http.Request, in *instance) {
	lines := []string{"dynamic", "meta-data"}
	if _, ok := in.userData(); ok {
		lines = append(lines, "user-data")
	}
	writeLines(w, lines)
}

// metaDataIndex lists meta-data/. Like Amazon's, it lists public-keys/
// only when there are keys.
func metaDataIndex(w http.ResponseWriter, _ *http.Request, in *instance) {
	lines := []string{"hostname", "instance-id", "local-hostname", "local-ipv4", "mac", "network/", "placement/"}
	if len(in.keys()) > 0 {
		lines = append(lines, "public-keys/")
	}
	writeLines(w, lines)
}

// publicKeys lists the keys as "0=key-0", the form cloud-init reads as
// "fetch 0/openssh-key".
func publicKeys(w http.ResponseWriter, r *http.Request, in *instance) {
	keys := in.keys()
	if len(keys) == 0 {
		http.NotFound(w, r)
		return
	}
	lines := make([]string, len(keys))
	for i := range keys {
		lines[i] = strconv.Itoa(i) + "=key-" + strconv.Itoa(i)
	}
	writeLines(w, lines)
}

// publicKey answers public-keys/{n}/ (a listing) and its openssh-key.
func publicKey(w http.ResponseWriter, r *http.Request, in *instance) {
	keys := in.keys()
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(keys) || strconv.Itoa(n) != r.PathValue("n") {
		http.NotFound(w, r)
		return
	}
	switch r.PathValue("field") {
	case "":
		writeText(w, "openssh-key")
	case "openssh-key":
		writeText(w, keys[n])
	default:
		http.NotFound(w, r)
	}
}

// macs lists the one interface the machine asked from.
func macs(w http.ResponseWriter, _ *http.Request, in *instance) {
	writeText(w, in.mac+"/")
}

// macField answers network/interfaces/macs/{mac}/ (a listing) and its
// fields.
func macField(w http.ResponseWriter, r *http.Request, in *instance) {
	if mac, err := store.NormalizeMAC(r.PathValue("mac")); err != nil || mac != in.mac {
		http.NotFound(w, r)
		return
	}
	switch r.PathValue("field") {
	case "":
		writeLines(w, []string{"device-number", "local-ipv4s", "mac"})
	case "device-number":
		writeText(w, strconv.Itoa(in.nic))
	case "local-ipv4s":
		writeText(w, in.addr.String())
	case "mac":
		writeText(w, in.mac)
	default:
		http.NotFound(w, r)
	}
}

// ec2UserData is the user-data verbatim, or 404 when there is none, as
// Amazon's. It may be anything (a gzip file, a MIME multipart), so it is
// sent as octet-stream, as Amazon does.
func ec2UserData(w http.ResponseWriter, r *http.Request, in *instance) {
	ud, ok := in.userData()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write([]byte(ud))
}

// identity is the instance identity document: the fields of Amazon's this
// site can fill.
type identity struct {
	InstanceID       string `json:"instanceId"`
	PrivateIP        string `json:"privateIp"`
	Region           string `json:"region"`
	AvailabilityZone string `json:"availabilityZone"`
	Architecture     string `json:"architecture"`
}

func identityDocument(w http.ResponseWriter, _ *http.Request, in *instance) {
	arch := in.machine.Arch
	if arch == "aarch64" {
		arch = "arm64" // Amazon's name for it
	}
	writeJSON(w, "text/plain; charset=utf-8", identity{
		InstanceID:       in.machine.ID,
		PrivateIP:        in.addr.String(),
		Region:           in.site,
		AvailabilityZone: in.zone(),
		Architecture:     arch,
	})
}

// zone is the availability zone: the site's name (the region) and the
// letter "a", the form cloud-init parses. Outside AWS its Ec2 datasource
// takes the region to be the zone less its last character, so a zone
// equal to the region would cut the site's name short.
func (in *instance) zone() string { return in.site + "a" }
