package httpboot

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// bootRequest is a script request, checked: every field is safe to put
// into a script as it is.
type bootRequest struct {
	mac  string // canonical lowercase colon form
	base string // the appliance as the client reached it: http://host[:port]
	// arch and platform are iPXE's ${buildarch} and ${platform} ("x86_64",
	// "efi"); either may be empty.
	arch     string
	platform string
	// addr is the source address, the only one a credential in the
	// script may be for.
	addr netip.Addr
}

// paramError is a bad request parameter. Its text names the parameter and
// never repeats the value.
type paramError struct {
	param  string
	reason string
}

func (e *paramError) Error() string { return e.param + ": " + e.reason }

var (
	// tokenRE is what arch and platform may be: iPXE's values are short
	// lowercase words.
	tokenRE    = regexp.MustCompile(`^[a-z0-9_]{0,16}$`)
	hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
)

// parseBootRequest checks a script request. mac is the MAC as the client
// sent it, from the query or the path.
func parseBootRequest(r *http.Request, mac string) (bootRequest, error) {
	var br bootRequest
	var err error
	if br.mac, err = parseMAC(mac); err != nil {
		return br, err
	}
	if br.base, err = baseURL(r.Host); err != nil {
		return br, err
	}
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *string
	}{{"arch", &br.arch}, {"platform", &br.platform}} {
		v := q.Get(p.name)
		if !tokenRE.MatchString(v) {
			return br, &paramError{p.name, "must be at most 16 lowercase letters, digits or '_'"}
		}
		*p.dst = v
	}
	if br.addr, err = provision.SourceAddr(r); err != nil {
		return br, &paramError{"source address", "cannot be told from the connection"}
	}
	return br, nil
}

// parseMAC accepts a MAC in any common form: colons or hyphens
// (52:54:00:12:34:56, iPXE's ${net0/mac} and ${net0/mac:hexhyp}), Cisco
// dots (5254.0012.3456) or 12 bare hex digits (${net0/mac:hexraw}).
func parseMAC(s string) (string, error) {
	if s == "" {
		return "", &paramError{"mac", "is required"}
	}
	if len(s) == 12 && isHex(s) {
		s = s[0:2] + ":" + s[2:4] + ":" + s[4:6] + ":" + s[6:8] + ":" + s[8:10] + ":" + s[10:12]
	}
	mac, err := store.NormalizeMAC(s)
	if err != nil {
		return "", &paramError{"mac", "is not a 48-bit MAC address"}
	}
	return mac, nil
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// baseURL returns the appliance's URL as the client reached it, rebuilt
// from the parsed Host header rather than copied: the DHCP server gave the
// client a URL with the address of the node that answered, so that is the
// address to fetch the rest from.
func baseURL(hostport string) (string, error) {
	bad := &paramError{"Host", "must be an IP address or a hostname, with an optional port"}
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return "", bad
		}
		port = ":" + strconv.FormatUint(n, 10)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", bad
		}
		if a.Is6() && !a.Is4In6() {
			return "http://[" + a.String() + "]" + port, nil
		}
		return "http://" + a.Unmap().String() + port, nil
	}
	host = strings.ToLower(host)
	if len(host) > 253 || !hostnameRE.MatchString(host) {
		return "", bad
	}
	return fmt.Sprintf("http://%s%s", host, port), nil
}
