package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/internal/errs"
)

// TestArtifacts: GET /v1/artifacts lists what the site records of each
// digest its images point at, with the state and the nodes that hold it
// and lack it; GET /v1/artifacts/{sha256} one, by hex or sha256: ref; a
// bad ?node is refused naming it.
func TestArtifacts(t *testing.T) {
	n := apptest.Start(t)
	sum := strings.Repeat("5a", 32)
	if code, body := call(t, n, "PUT", "/v1/images/debian-12", n.Token,
		`{"type":"os","sha256":"`+sum+`","size_bytes":1073741824,"format":"raw"}`); code != http.StatusCreated {
		t.Fatalf("put image: %d %s", code, body)
	}
	code, body := call(t, n, "GET", "/v1/artifacts", n.Token, "")
	var list api.ArtifactList
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Items) != 1 {
		t.Fatalf("GET /v1/artifacts: %d %s", code, body)
	}
	r := list.Items[0]
	if r.SHA256 != sum || r.State != artifacts.StateMissing || r.Size != 1<<30 || strings.Join(r.Names, ",") != "debian-12" || len(r.Nodes) != 0 {
		t.Errorf("record %+v, want debian-12's, missing", r)
	}
	if err := n.Site.RecordArtifact(t.Context(), "n1", sum, 1<<30); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{sum, "sha256:" + sum} {
		code, body = call(t, n, "GET", "/v1/artifacts/"+key, n.Token, "")
		var one artifacts.Record
		if code != http.StatusOK || json.Unmarshal([]byte(body), &one) != nil || one.State != artifacts.StatePresent ||
			strings.Join(one.Nodes, ",") != "n1" || len(one.Missing) != 0 {
			t.Errorf("GET /v1/artifacts/%s: %d %s", key[:10], code, body)
		}
	}
	if code, body := call(t, n, "GET", "/v1/artifacts/"+strings.Repeat("0", 64), n.Token, ""); code != http.StatusNotFound {
		t.Errorf("an unknown digest: %d %s", code, body)
	}
	code, body = call(t, n, "GET", "/v1/artifacts?node=node9", n.Token, "")
	if code != http.StatusBadRequest || decodeErr(t, body).Error.Field != "node" || decodeErr(t, body).Error.Code != errs.CodeInvalid {
		t.Errorf("?node=node9: %d %s, want refused naming node", code, body)
	}
}
