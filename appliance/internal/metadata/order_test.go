package metadata

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/syncproto"
)

// TestOrderFromCentralReachesMetadata: a provision order central places
// with a hostname, SSH keys and user data in its values (as central's
// orders package writes them) makes the workflow whose values the
// machine's metadata shows, once the site applies the revision.
func TestOrderFromCentralReachesMetadata(t *testing.T) {
	parallel(t)
	for name, pair := range map[string][2]string{
		"hostname":  {syncproto.OrderValueHostname, actions.ValueHostname},
		"ssh_keys":  {syncproto.OrderValueSSHKeys, actions.ValueSSHKeys},
		"user_data": {syncproto.OrderValueUserData, actions.ValueUserData},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: central writes value %q, the site reads %q", name, pair[0], pair[1])
		}
	}
	f := newFixture(t)
	o := syncproto.Order{ID: "b1-x-1", Action: syncproto.OrderProvision, MachineID: "m3", Template: "install", Image: "debian",
		Values: map[string]string{
			syncproto.OrderValueHostname: "api-7",
			syncproto.OrderValueSSHKeys:  "ssh-ed25519 AAAAC3-dave dave\nssh-ed25519 AAAAC3-erin erin",
			syncproto.OrderValueUserData: "#cloud-config\nruncmd:\n  - echo api-7\n",
		}}
	obj, err := json.Marshal(&o)
	if err != nil {
		t.Fatal(err)
	}
	r := apptest.Apply(t, f.db, site.ApplyDesired, site.DesiredPayload{Time: t0, Desired: site.Desired{Revision: 1,
		Changes: []site.DesiredChange{{Kind: site.DesiredOrder, Key: o.ID, Object: obj}}}})
	if res, err := site.DecodeValue[site.DesiredResult](r); err != nil || res.Refused != 0 {
		t.Fatalf("the revision: %+v, %v", res, err)
	}
	code, raw := f.get(t, addr3, "/metadata/v1.json")
	if code != http.StatusOK {
		t.Fatalf("GET /metadata/v1.json: %d %s", code, raw)
	}
	var doc document
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	want := document{Hostname: "api-7", PublicKeys: []string{"ssh-ed25519 AAAAC3-dave dave", "ssh-ed25519 AAAAC3-erin erin"},
		UserData: "#cloud-config\nruncmd:\n  - echo api-7\n"}
	got := document{Hostname: doc.Hostname, PublicKeys: doc.PublicKeys, UserData: doc.UserData}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metadata of m3 (-want +got):\n%s", diff)
	}
	if doc.Workflow == nil || doc.Workflow.ID != o.ID {
		t.Errorf("workflow %+v, want the order's", doc.Workflow)
	}
}
