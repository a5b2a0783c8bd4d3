package metadata

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestNoCloud(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	ok := func(body string) answer { return answer{http.StatusOK, body} }
	checkAnswers(t, f, addr1, map[string]answer{
		"/nocloud/meta-data": ok("instance-id: m1\nlocal-hostname: web-1\npublic-keys:\n" +
			"- ssh-ed25519 AAAAC3-alice alice@example.net\n- ssh-rsa AAAAB3-bob bob@example.net\n"),
		"/nocloud/user-data":   ok(userData1),
		"/nocloud/vendor-data": ok(""),
		// The MAC is quoted: YAML 1.1 (PyYAML, so cloud-init) would read
		// 52:54:00:12:34:01 as a base-60 number.
		"/nocloud/network-config": ok("ethernets:\n  eth0:\n    dhcp4: true\n    match:\n" +
			"      macaddress: \"52:54:00:12:34:01\"\nversion: 2\n"),
		"/nocloud/":        {http.StatusNotFound, "404 page not found\n"},
		"/nocloud/unknown": {http.StatusNotFound, "404 page not found\n"},
	})
	// A machine with no workflow gets an empty cloud-config, and its
	// reserved address as static configuration.
	checkAnswers(t, f, addr3, map[string]answer{
		"/nocloud/meta-data": ok("instance-id: m3\nlocal-hostname: m3\n"),
		"/nocloud/user-data": ok("#cloud-config\n{}\n"),
		"/nocloud/network-config": ok(`ethernets:
  eth0:
    addresses:
    - 198.18.0.10/24
    dhcp4: false
    match:
      macaddress: "52:54:00:12:34:03"
    nameservers:
      addresses:
      - 198.18.0.2
      - 9.9.9.9
      search:
      - example.net
    routes:
    - to: 0.0.0.0/0
      via: 198.18.0.1
version: 2
`),
	})
}

func TestNoCloudYAMLParses(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	_, got := f.get(t, addr1, "/nocloud/meta-data")
	var md struct {
		InstanceID string   `json:"instance-id"`
		Hostname   string   `json:"local-hostname"`
		Keys       []string `json:"public-keys"`
	}
	if err := yaml.UnmarshalStrict([]byte(got), &md); err != nil {
		t.Fatalf("meta-data does not parse: %v\n%s", err, got)
	}
	if md.InstanceID != "m1" || md.Hostname != "web-1" || len(md.Keys) != 2 {
		t.Errorf("meta-data = %+v", md)
	}
}

func TestJSONDocument(t *testing.T) {
	parallel(t)
	f := newFixture(t)
	tests := map[string]map[string]any{
		addr1: {
			"instance_id": "m1", "hostname": "web-1", "local_ipv4": addr1, "mac": "52:54:00:12:34:01", "site": "fra1",
			"public_keys": []any{"ssh-ed25519 AAAAC3-alice alice@example.net", "ssh-rsa AAAAB3-bob bob@example.net"},
			"user_data":   userData1,
			"machine":     map[string]any{"id": "m1", "arch": "x86_64", "tags": []any{"rack-1"}},
			"workflow":    map[string]any{"id": "wf1", "status": "pending"},
		},
		addr3: {
			"instance_id": "m3", "hostname": "m3", "local_ipv4": addr3, "mac": "52:54:00:12:34:03", "site": "fra1",
			"public_keys": []any{}, "user_data": "",
			"machine": map[string]any{"id": "m3", "arch": "x86_64", "tags": []any{"rack-1"}},
		},
	}
	for from, want := range tests {
		t.Run(from, func(t *testing.T) {
			code, got := f.get(t, from, "/metadata/v1.json")
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, got)
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(got), &doc); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, doc); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
		})
	}
}
