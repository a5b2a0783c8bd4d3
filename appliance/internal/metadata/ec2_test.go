package metadata

import (
	"net/http"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/store"
)

func TestEC2(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	ok := func(body string) answer { return answer{http.StatusOK, body} }
	notFound := answer{http.StatusNotFound, "404 page not found\n"}
	checkAnswers(t, f, addr1, map[string]answer{
		"/latest/":           ok("dynamic\nmeta-data\nuser-data"),
		"/latest/meta-data/": ok("hostname\ninstance-id\nlocal-hostname\nlocal-ipv4\nmac\nnetwork/\nplacement/\npublic-keys/"),
		"/latest/meta-data":  ok("hostname\ninstance-id\nlocal-hostname\nlocal-ipv4\nmac\nnetwork/\nplacement/\npublic-keys/"),

		"/latest/meta-data/hostname":       ok("web-1"),
		"/latest/meta-data/local-hostname": ok("web-1"),
		"/latest/meta-data/instance-id":    ok("m1"),
		"/latest/meta-data/local-ipv4":     ok(addr1),
		"/latest/meta-data/mac":            ok("52:54:00:12:34:01"),

		"/latest/meta-data/placement/":                  ok("availability-zone\nregion"),
		"/latest/meta-data/placement":                   ok("availability-zone\nregion"),
		"/latest/meta-data/placement/availability-zone": ok("fra1a"),
		"/latest/meta-data/placement/region":            ok("fra1"),

		"/latest/meta-data/public-keys/":              ok("0=key-0\n1=key-1"),
		"/latest/meta-data/public-keys/0/":            ok("openssh-key"),
		"/latest/meta-data/public-keys/0":             ok("openssh-key"),
		"/latest/meta-data/public-keys/0/openssh-key": ok("ssh-ed25519 AAAAC3-alice alice@example.net"),
		"/latest/meta-data/public-keys/1/openssh-key": ok("ssh-rsa AAAAB3-bob bob@example.net"),
		"/latest/meta-data/public-keys/2/openssh-key": notFound,
		"/latest/meta-data/public-keys/00/":           notFound,
		"/latest/meta-data/public-keys/-1/":           notFound,
		"/latest/meta-data/public-keys/0/other":       notFound,

		"/latest/meta-data/network/":                                                 ok("interfaces/"),
		"/latest/meta-data/network/interfaces/":                                      ok("macs/"),
		"/latest/meta-data/network/interfaces/macs/":                                 ok("52:54:00:12:34:01/"),
		"/latest/meta-data/network/interfaces/macs/52:54:00:12:34:01/":               ok("device-number\nlocal-ipv4s\nmac"),
		"/latest/meta-data/network/interfaces/macs/52:54:00:12:34:01/device-number":  ok("1"),
		"/latest/meta-data/network/interfaces/macs/52:54:00:12:34:01/local-ipv4s":    ok(addr1),
		"/latest/meta-data/network/interfaces/macs/52:54:00:12:34:01/mac":            ok("52:54:00:12:34:01"),
		"/latest/meta-data/network/interfaces/macs/52-54-00-12-34-01/mac":            ok("52:54:00:12:34:01"),
		"/latest/meta-data/network/interfaces/macs/52:54:00:12:34:02/mac":            notFound,
		"/latest/meta-data/network/interfaces/macs/52:54:00:12:34:01/subnet-ipv4-ci": notFound,

		"/latest/user-data":                  ok(userData1),
		"/latest/dynamic/":                   ok("instance-identity/"),
		"/latest/dynamic/instance-identity/": ok("document"),
		"/latest/dynamic/instance-identity/document": ok(`{
  "instanceId": "m1",
  "privateIp": "198.18.0.101",
  "region": "fra1",
  "availabilityZone": "fra1a",
  "architecture": "x86_64"
}
`),

		// The versions cloud-init asks for answer like latest; others are
		// unknown.
		"/2009-04-04/meta-data/instance-id": ok("m1"),
		"/2021-03-23/meta-data/instance-id": ok("m1"),
		"/2016-09-02/user-data":             ok(userData1),
		"/2010-01-01/meta-data/instance-id": notFound,
		"/nocloud/meta-data/instance-id":    notFound,

		"/latest/meta-data/ami-id":    notFound,
		"/latest/meta-data/hostname/": notFound,
		"/latest/nothing":             notFound,
	})
}

// TestEC2Sparse: a machine without a workflow has no keys and no
// user-data, which EC2 answers with 404, and a hostname from the machine.
func TestEC2Sparse(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	ok := func(body string) answer { return answer{http.StatusOK, body} }
	notFound := answer{http.StatusNotFound, "404 page not found\n"}
	checkAnswers(t, f, addr3, map[string]answer{
		"/latest/":                       ok("dynamic\nmeta-data"),
		"/latest/meta-data/":             ok("hostname\ninstance-id\nlocal-hostname\nlocal-ipv4\nmac\nnetwork/\nplacement/"),
		"/latest/meta-data/hostname":     ok("m3"), // neither the workflow nor the machine names one
		"/latest/meta-data/local-ipv4":   ok(addr3),
		"/latest/meta-data/public-keys/": notFound,
		"/latest/user-data":              notFound,
		"/latest/meta-data/network/interfaces/macs/52:54:00:12:34:03/device-number": ok("1"),
	})
	// A machine's own hostname, without a workflow.
	f.update(t, func(tx *store.Tx) error {
		m, err := store.Get[store.Machine](tx, "m3")
		if err != nil {
			return err
		}
		m.Hostname = "m3.example.net"
		return tx.UnsafePutMachine(m, f.write())
	})
	checkAnswers(t, f, addr3, map[string]answer{"/latest/meta-data/hostname": ok("m3.example.net")})
}

func TestEC2Headers(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	for path, want := range map[string]string{
		"/latest/meta-data/instance-id":              "text/plain; charset=utf-8",
		"/latest/dynamic/instance-identity/document": "text/plain; charset=utf-8",
		"/latest/user-data":                          "application/octet-stream",
		"/nocloud/meta-data":                         "text/yaml; charset=utf-8",
		"/metadata/v1.json":                          "application/json",
	} {
		resp := f.do(t, http.MethodGet, addr1, path, nil)
		if got := resp.Header.Get("Content-Type"); got != want {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", path, got)
		}
	}
	if resp := f.do(t, http.MethodPost, addr1, "/latest/meta-data/instance-id", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
	resp := f.do(t, http.MethodHead, addr1, "/latest/meta-data/instance-id", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: status %d, want 200", resp.StatusCode)
	}
}
