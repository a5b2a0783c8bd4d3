package bmc

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
)

// Driver names.
const (
	IPMI    = "ipmi"
	Redfish = "redfish"
)

// Default ports.
const (
	IPMIPort    = "623"
	RedfishPort = "443"
)

// Credentials say how to reach one BMC.
//
// Printed (fmt's verbs), logged (slog) or marshaled to JSON, Credentials
// show the password only as "[redacted]".
type Credentials struct {
	// Address is the BMC's host name or IP address, with or without a
	// port. A port is that of Driver; with no Driver, IPMI's, and Redfish
	// then uses 443. Default ports: 623 for IPMI, 443 for Redfish.
	Address string
	// Username and Password log in to the BMC. Password is in the clear:
	// unseal it for the call, keep it no longer.
	Username string
	Password string
	// Driver pins the protocol: "ipmi" or "redfish". Empty tries the
	// Pool's Config.Order (Redfish, then IPMI).
	Driver string
	// Fingerprint is the fingerprint (see Fingerprint) of the Redfish
	// certificate an operator accepted for this BMC: the Redfish driver
	// sends the password only to a BMC that presents it (or one that
	// Config.RootCAs vouches for). IPMI has no certificate.
	Fingerprint string
}

const redacted = "[redacted]"

// String describes c without its password.
func (c Credentials) String() string {
	pw := ""
	if c.Password != "" {
		pw = " password=" + redacted
	}
	return fmt.Sprintf("{address=%s driver=%s username=%s%s%s}", c.Address, c.Driver, c.Username, pw, c.fingerprintField())
}

func (c Credentials) fingerprintField() string {
	if c.Fingerprint == "" {
		return ""
	}
	return " fingerprint=" + c.Fingerprint
}

// Format prints String for every verb, %#v and %+v included, so that no
// verb shows the password.
func (c Credentials) Format(f fmt.State, verb rune) { io.WriteString(f, c.String()) }

// LogValue logs c without its password.
func (c Credentials) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("address", c.Address),
		slog.String("driver", c.Driver),
		slog.String("username", c.Username),
	}
	if c.Password != "" {
		attrs = append(attrs, slog.String("password", redacted))
	}
	if c.Fingerprint != "" {
		attrs = append(attrs, slog.String("fingerprint", c.Fingerprint))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON marshals c without its password.
func (c Credentials) MarshalJSON() ([]byte, error) {
	v := struct {
		Address     string `json:"address"`
		Driver      string `json:"driver,omitempty"`
		Username    string `json:"username,omitempty"`
		Password    string `json:"password,omitempty"`
		Fingerprint string `json:"fingerprint,omitempty"`
	}{c.Address, c.Driver, c.Username, "", c.Fingerprint}
	if c.Password != "" {
		v.Password = redacted
	}
	return json.Marshal(v)
}

// hostPort splits Address, giving it port def if it has none. An IPv6
// host comes back in brackets, ready to have ":port" appended (as bmclib
// does).
func (c Credentials) hostPort(def string) (host, port string, err error) {
	a := strings.TrimSpace(c.Address)
	host, port, err = net.SplitHostPort(a)
	if err != nil {
		// No port (or a bare IPv6 address).
		host, port = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), def
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return "", "", fmt.Errorf("bmc: invalid address %q", c.Address)
	}
	if port == "" {
		port = def
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("bmc: invalid port in address %q", c.Address)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host, port, nil
}

// port returns the port of driver d for c: Address's port when it is
// d's (see Address), else d's default.
func (c Credentials) port(d string) (host, port string, err error) {
	def := IPMIPort
	if d == Redfish {
		def = RedfishPort
	}
	host, port, err = c.hostPort(def)
	if err != nil {
		return "", "", err
	}
	if d == Redfish && c.Driver != Redfish {
		port = RedfishPort
	}
	return host, port, nil
}

// key names the BMC for its lock: host:port, with IPMI's default port.
func (c Credentials) key() (string, error) {
	host, port, err := c.hostPort(IPMIPort)
	if err != nil {
		return "", err
	}
	return host + ":" + port, nil
}
