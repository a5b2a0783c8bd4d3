package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/syncproto"
)

var (
	digestA = strings.Repeat("a1", 32)
	digestB = strings.Repeat("b2", 32)
)

const bmcSecret = "BMC-hunter2-secret"

// ordersEnv is an API over sites s1 and s2, each with machines m1 and m2
// (with a BMC password) and image debian-12 (digestA at s1, digestB at
// s2).
func ordersEnv(t *testing.T) *env {
	e := newEnv(t)
	for _, site := range []string{"s1", "s2"} {
		e.createSite(site)
		for _, m := range []string{"m1", "m2"} {
			body := fmt.Sprintf(`{"id":%q,"hostname":"%s-%s","bmc":{"address":"10.0.0.9","username":"admin","password":%q}}`, m, site, m, bmcSecret)
			if code := e.do("PUT", "/v1/sites/"+site+"/machines/"+m, body, nil); code != http.StatusOK {
				t.Fatalf("put machine %s/%s: %d", site, m, code)
			}
		}
		e.putImage(site, map[string]string{"s1": digestA, "s2": digestB}[site])
	}
	return e
}

func (e *env) putImage(site, digest string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"name":"debian-12","url":"http://mirror.example/debian.img","format":"raw","sha256":%q}`, digest)
	if code := e.do("PUT", "/v1/sites/"+site+"/images/debian-12", body, nil); code != http.StatusOK {
		e.t.Fatalf("put image at %s: %d", site, code)
	}
}

// TestOrdersPreviewThenPlace: an operator previews a bulk provision by
// query, then places the confirmed targets: every order shares the
// batch's prefix, carries its site's digest, and is in one new revision
// per site made by the operator's token; the offline sites' orders say
// they wait.
func TestOrdersPreviewThenPlace(t *testing.T) {
	e := ordersEnv(t)
	ops := e.newToken("ops", access.Operator)
	req := `{"action":"provision","query":"id:m1","params":{"image":"debian-12","ssh_keys":["ssh-ed25519 AAAA ops"],"user_data":"#cloud-config\n"}}`
	var p orders.Preview
	if code := e.doToken(ops, "POST", "/v1/orders/preview", req, &p); code != http.StatusOK {
		t.Fatalf("preview: %d %+v", code, p)
	}
	if len(p.Items) != 2 || p.Refused != 0 || !p.Items[0].Offline || !strings.Contains(p.Items[1].Will, "install debian-12 (sha256:b2b2b2b2b2b2…)") {
		t.Fatalf("preview %+v", p)
	}
	targets := make([]orders.TargetRef, len(p.Items))
	for i, it := range p.Items {
		targets[i] = it.TargetRef
	}
	body, _ := json.Marshal(orders.Request{Action: "provision", Targets: targets, Params: orders.OrderParams{Image: "debian-12"}})
	var res orders.Result
	if code := e.doToken(ops, "POST", "/v1/orders", string(body), &res); code != http.StatusOK {
		t.Fatalf("place: %d %+v", code, res)
	}
	if len(res.Placed) != 2 || !strings.HasPrefix(res.Batch, "b") {
		t.Fatalf("result %+v", res)
	}
	for i, pl := range res.Placed {
		if pl.Order != fmt.Sprintf("%s-%d", res.Batch, i+1) || !pl.Offline || pl.Revision != 4 {
			t.Errorf("placed %+v, want %s-%d at revision 4, offline", pl, res.Batch, i+1)
		}
		var out struct{ Revisions []store.Revision }
		e.do("GET", "/v1/sites/"+pl.Site+"/revisions?since=3", "", &out)
		if len(out.Revisions) != 1 || out.Revisions[0].By != "ops" {
			t.Errorf("revisions of %s after 3: %+v", pl.Site, out.Revisions)
		}
	}
	var o syncproto.Order
	if code := e.do("GET", "/v1/sites/s2/orders/"+res.Placed[1].Order, "", &o); code != http.StatusOK || o.ImageSHA256 != digestB || o.MachineID != "m1" {
		t.Errorf("the order at s2: %d %+v", code, o)
	}
}

// TestOrdersRoles: a viewer gets 403 on the orders and the audit, and
// its refused order is in the audit.
func TestOrdersRoles(t *testing.T) {
	e := ordersEnv(t)
	viewer := e.newToken("tech", access.Viewer)
	req := `{"action":"power","query":"","params":{"power":"cycle"}}`
	for _, path := range []string{"/v1/orders", "/v1/orders/preview"} {
		if code := e.doToken(viewer, "POST", path, req, nil); code != http.StatusForbidden {
			t.Errorf("a viewer's POST %s: %d, want 403", path, code)
		}
	}
	if code := e.doToken(viewer, "GET", "/v1/audit", "", nil); code != http.StatusForbidden {
		t.Errorf("a viewer's GET /v1/audit: %d, want 403", code)
	}
	var out struct{ Entries []orders.AuditEntry }
	e.do("GET", "/v1/audit?by=tech", "", &out)
	if len(out.Entries) != 2 || out.Entries[0].Action != "order.place" || out.Entries[0].Status != 403 || out.Entries[0].Role != "viewer" {
		t.Errorf("the viewer's entries: %+v", out.Entries)
	}
}

// TestPutOrderResolvesImage: PUT of one order resolves its image's name
// to the site's digest; putting it again as it was changes nothing,
// even once the name points elsewhere; a different order under the key
// is refused.
func TestPutOrderResolvesImage(t *testing.T) {
	e := ordersEnv(t)
	put := func(body string) (int, map[string]json.RawMessage) {
		var out map[string]json.RawMessage
		return e.do("PUT", "/v1/sites/s1/orders/o1", body, &out), out
	}
	order := `{"action":"provision","machine_id":"m1","image":"debian-12"}`
	code, out := put(order)
	if code != http.StatusOK || string(out["revision"]) != "4" {
		t.Fatalf("put: %d %s", code, out)
	}
	var o syncproto.Order
	e.do("GET", "/v1/sites/s1/orders/o1", "", &o)
	if o.ImageSHA256 != digestA {
		t.Errorf("order %+v, want image_sha256 %s", o, digestA)
	}
	e.putImage("s1", digestB)
	if code, out := put(order); code != http.StatusOK || string(out["revision"]) != "5" {
		t.Errorf("put again: %d %s, want 200 at the latest revision", code, out)
	}
	if code, _ := put(`{"action":"provision","machine_id":"m2","image":"debian-12"}`); code != http.StatusConflict {
		t.Errorf("another order under the key: %d, want 409", code)
	}
	if code, _ := put(fmt.Sprintf(`{"action":"provision","machine_id":"m1","image":"debian-12","image_sha256":%q}`, digestB)); code != http.StatusConflict {
		t.Errorf("the order asking another digest under the key: %d, want 409", code)
	}
	if code := e.do("PUT", "/v1/sites/s9/orders/o1", order, nil); code != http.StatusNotFound {
		t.Errorf("an order for an unknown site: %d, want 404", code)
	}
}

// TestAuditEveryChange: every kind of change through the API leaves one
// entry (done or refused), named after its route, with the caller's
// name, role and address; none holds a token, a credential, a BMC
// password or user data; the downloads hold what the JSON does.
func TestAuditEveryChange(t *testing.T) {
	e := ordersEnv(t) // 2 sites, 4 machines, 2 images, 1 token: 9 entries by admin
	ops := e.newToken("ops", access.Operator)
	userData := "#cloud-config\npassword: UD-SECRET\n"
	steps := []struct {
		token, method, path, body string
		code                      int
	}{
		{ops, "PUT", "/v1/sites/s1/orders/o1", `{"action":"power_on","machine_id":"m1"}`, 200},
		{ops, "POST", "/v1/orders", `{"action":"provision","targets":[{"site":"s1","machine":"m2"}],"params":{"image":"debian-12","hostname":"web-9","user_data":` + jsonString(userData) + `}}`, 200},
		{ops, "POST", "/v1/orders/preview", `{"action":"deprovision","query":"site:s2"}`, 200},
		{ops, "POST", "/v1/orders", `{"action":"fly"}`, 400},
		{ops, "PUT", "/v1/sites/s1/labels", `{"labels":{"region":"eu"}}`, 200},
		{ops, "DELETE", "/v1/sites/s2/machines/m2", "", 200},
		{ops, "POST", "/v1/tokens", `{"name":"x","role":"viewer"}`, 403},
		{e.token, "POST", "/v1/tokens", `{"name":"ci","role":"viewer"}`, 201},
	}
	for _, st := range steps {
		if code := e.doToken(st.token, st.method, st.path, st.body, nil); code != st.code {
			t.Fatalf("%s %s: %d, want %d", st.method, st.path, code, st.code)
		}
	}
	var out struct{ Entries []orders.AuditEntry }
	if code := e.doToken(ops, "GET", "/v1/audit?after=9&limit=100", "", &out); code != http.StatusOK {
		t.Fatalf("GET /v1/audit: %d", code)
	}
	var got []string
	for _, en := range out.Entries {
		got = append(got, fmt.Sprintf("%s %s %s %d", en.By, en.Action, en.Target, en.Status))
		if en.From != "127.0.0.1" || en.Time.IsZero() || en.Role == "" {
			t.Errorf("entry %+v lacks where, when or the role", en)
		}
	}
	want := []string{
		"ops order.put s1/o1 200",
		"ops order.place " + out.Entries[1].Target + " 200",
		"ops order.preview orders/preview 200",
		"ops order.place orders 400",
		"ops site.labels sites/s1/labels 200",
		"ops machine.delete sites/s2/machines/m2 200",
		"ops token.create tokens 403",
		"admin token.create tokens 201",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := out.Entries[1].Detail; !strings.Contains(d, "user data (34 bytes)") || !strings.Contains(d, "1 placed") {
		t.Errorf("the placement's detail %q", d)
	}

	all := e.download("/v1/audit?format=jsonl") + e.download("/v1/audit?format=csv")
	for _, secret := range []string{e.token, ops, bmcSecret, "UD-SECRET", strings.SplitN(e.token, ".", 2)[1]} {
		if strings.Contains(all, secret) {
			t.Errorf("the audit holds a secret %q", secret)
		}
	}
	lines := strings.Split(strings.TrimSpace(e.download("/v1/audit?format=jsonl&by=ops")), "\n")
	csvLines := strings.Split(strings.TrimSpace(e.download("/v1/audit?format=csv&by=ops")), "\n")
	if len(lines) != 7 || len(csvLines) != 8 || csvLines[0] != "seq,time,by,role,from,action,target,detail,status" {
		t.Errorf("downloads: %d JSON lines, %d CSV lines (%q)", len(lines), len(csvLines), csvLines[0])
	}
	if code := e.doToken(ops, "GET", "/v1/audit?format=xml", "", nil); code != http.StatusBadRequest {
		t.Errorf("format=xml: %d, want 400", code)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// download returns the body of GET path as the admin.
func (e *env) download(path string) string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		e.t.Fatalf("GET %s: %d %s", path, res.StatusCode, raw)
	}
	return string(raw)
}
