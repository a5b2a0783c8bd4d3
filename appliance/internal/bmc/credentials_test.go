package bmc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCredentialsRedacted: no verb, log handler or JSON shows the
// password, directly or in a struct or a pointer.
func TestCredentialsRedacted(t *testing.T) {
	c := Credentials{Address: "10.0.0.1:623", Username: "admin", Password: "s3cr3t-pw", Driver: IPMI}
	outer := struct {
		Name string
		C    Credentials
		P    *Credentials
	}{"m1", c, &c}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		out = append(out, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, outer))
	}
	out = append(out, c.String(), fmt.Sprint(c), fmt.Sprintln(c))
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("text", "bmc", c, "ptr", &c)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("json", "bmc", c, "ptr", &c)
	out = append(out, logs.String())
	for _, v := range []any{c, &c, outer} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	for _, s := range out {
		if strings.Contains(s, c.Password) {
			t.Errorf("password shown: %s", s)
		}
	}
	if want := "{address=10.0.0.1:623 driver=ipmi username=admin password=[redacted]}"; c.String() != want {
		t.Errorf("String() = %q, want %q", c.String(), want)
	}
	if !strings.Contains(logs.String(), "bmc.address=10.0.0.1:623") || !strings.Contains(logs.String(), `"password":"[redacted]"`) {
		t.Errorf("logs lack the address or the redaction mark:\n%s", logs.String())
	}
}

// TestCredentialsAddress: ports per driver, and the lock's key.
func TestCredentialsAddress(t *testing.T) {
	type hp struct{ Host, Port string }
	tests := map[string]struct {
		c             Credentials
		ipmi, redfish hp
		key           string
	}{
		"host":              {Credentials{Address: "10.0.0.1"}, hp{"10.0.0.1", "623"}, hp{"10.0.0.1", "443"}, "10.0.0.1:623"},
		"port is IPMI's":    {Credentials{Address: "10.0.0.1:6230"}, hp{"10.0.0.1", "6230"}, hp{"10.0.0.1", "443"}, "10.0.0.1:6230"},
		"port is Redfish's": {Credentials{Address: "10.0.0.1:8443", Driver: Redfish}, hp{"10.0.0.1", "8443"}, hp{"10.0.0.1", "8443"}, "10.0.0.1:8443"},
		"name":              {Credentials{Address: "bmc1.example"}, hp{"bmc1.example", "623"}, hp{"bmc1.example", "443"}, "bmc1.example:623"},
		"IPv6":              {Credentials{Address: "fd00::1"}, hp{"[fd00::1]", "623"}, hp{"[fd00::1]", "443"}, "[fd00::1]:623"},
		"IPv6 bracketed":    {Credentials{Address: "[fd00::1]"}, hp{"[fd00::1]", "623"}, hp{"[fd00::1]", "443"}, "[fd00::1]:623"},
		"IPv6 and port":     {Credentials{Address: "[fd00::1]:700"}, hp{"[fd00::1]", "700"}, hp{"[fd00::1]", "443"}, "[fd00::1]:700"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got struct {
				IPMI, Redfish hp
				Key           string
			}
			var err error
			if got.IPMI.Host, got.IPMI.Port, err = tc.c.port(IPMI); err != nil {
				t.Fatal(err)
			}
			if got.Redfish.Host, got.Redfish.Port, err = tc.c.port(Redfish); err != nil {
				t.Fatal(err)
			}
			if got.Key, err = tc.c.key(); err != nil {
				t.Fatal(err)
			}
			want := struct {
				IPMI, Redfish hp
				Key           string
			}{tc.ipmi, tc.redfish, tc.key}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", " ", ":623", "a b", "http://x/"} {
		if _, err := (Credentials{Address: bad}).key(); err == nil {
			t.Errorf("address %q accepted", bad)
		}
	}
}

func TestParsePowerState(t *testing.T) {
	for in, want := range map[string]PowerState{
		"Chassis Power is on\n":  On,
		"Chassis Power is off\n": Off,
		"On":                     On,
		"Off":                    Off,
		"PoweringOn":             On,
		"PoweringOff":            Off,
	} {
		if got, err := parsePowerState(in); err != nil || got != want {
			t.Errorf("parsePowerState(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parsePowerState("Error: Unable to establish IPMI v2 / RMCP+ session"); err == nil {
		t.Error("an error message parsed as a power state")
	}
}
