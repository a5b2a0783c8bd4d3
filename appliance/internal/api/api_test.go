package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/apptest"
)

// call sends a request and returns the status and body.
func call(t *testing.T, n *apptest.Node, method, path, token, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, n.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

type apiError struct {
	Error struct {
		Code, Field, Message string
	}
}

func decodeErr(t *testing.T, body string) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not a JSON error: %q", body)
	}
	return e
}

func TestAuth(t *testing.T) {
	n := apptest.Start(t)
	tests := map[string]struct {
		header string
		want   int
	}{
		"no token":       {"", http.StatusUnauthorized},
		"wrong secret":   {"Bearer " + strings.Split(n.Token, ".")[0] + ".nope", http.StatusUnauthorized},
		"unknown id":     {"Bearer deadbeef.secret", http.StatusUnauthorized},
		"not bearer":     {"Basic " + n.Token, http.StatusUnauthorized},
		"garbage":        {"Bearer ...", http.StatusUnauthorized},
		"valid token":    {"Bearer " + n.Token, http.StatusOK},
		"case of scheme": {"bearer " + n.Token, http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/v1/machines", "/v1/cluster", "/v1/events"} {
				code, body := call(t, n, "GET", path, "", "", "Authorization", tc.header)
				if code != tc.want {
					t.Fatalf("GET %s: %d %s, want %d", path, code, body, tc.want)
				}
				if code == http.StatusUnauthorized && decodeErr(t, body).Error.Code != "unauthorized" {
					t.Errorf("401 body: %s", body)
				}
			}
		})
	}
	// Writes are refused too, and change nothing.
	code, _ := call(t, n, "PUT", "/v1/machines/m1", "", `{"interfaces":[{"mac":"02:00:00:00:00:01"}]}`)
	if code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated PUT: %d", code)
	}
	if code, body := call(t, n, "GET", "/v1/machines/m1", n.Token, ""); code != http.StatusNotFound {
		t.Fatalf("machine exists after refused PUT: %d %s", code, body)
	}
	// Health and metrics need no token.
	if code, _ := call(t, n, "GET", "/healthz", "", ""); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
}

func TestValidationNamesField(t *testing.T) {
	n := apptest.Start(t)
	tests := map[string]struct {
		path, body string
		field      string
	}{
		"bad mac":          {"/v1/machines/m1", `{"interfaces":[{"mac":"zz:00"}]}`, "interfaces[0].mac"},
		"bad arch":         {"/v1/machines/m1", `{"arch":"sparc"}`, "arch"},
		"bad machine id":   {"/v1/machines/M_1!", `{}`, "id"},
		"id mismatch":      {"/v1/machines/m1", `{"id":"m2"}`, "id"},
		"unknown field":    {"/v1/machines/m1", `{"hostnmae":"x"}`, "hostnmae"},
		"wrong type":       {"/v1/machines/m1", `{"tags":"web"}`, "tags"},
		"bmc no address":   {"/v1/machines/m1", `{"bmc":{"username":"u"}}`, "bmc.address"},
		"bad cidr":         {"/v1/subnets/s1", `{"cidr":"198.18.0.0/33"}`, "cidr"},
		"gateway outside":  {"/v1/subnets/s1", `{"cidr":"198.18.0.0/24","gateway":"198.19.0.1"}`, "gateway"},
		"pool reversed":    {"/v1/subnets/s1", `{"cidr":"198.18.0.0/24","pools":[{"start":"198.18.0.9","end":"198.18.0.2"}]}`, "pools[0]"},
		"image sha":        {"/v1/images/i1", `{"url":"http://x/y.img","format":"raw","sha256":"abc"}`, "sha256"},
		"template cycle":   {"/v1/templates/t1", `{"actions":[{"name":"a","type":"exec","args":{"command":"true"},"needs":["b"]},{"name":"b","type":"exec","args":{"command":"true"},"needs":["a"]}]}`, "actions[1].needs[0]"},
		"template missing": {"/v1/templates/t1", `{"actions":[{"name":"a","type":"exec","args":{"command":"true"},"needs":["x"]}]}`, "actions[0].needs[0]"},
		"workflow machine": {"/v1/workflows/w1", `{"machine_id":"nope","template":"t"}`, "machine_id"},
		"settings":         {"/v1/settings", `{"site_name":"s","unknown_machines":"maybe"}`, "unknown_machines"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := n.DB.AppliedIndex()
			code, body := call(t, n, "PUT", tc.path, n.Token, tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("PUT %s: %d %s, want 400", tc.path, code, body)
			}
			e := decodeErr(t, body)
			if e.Error.Code != "invalid" || e.Error.Field != tc.field {
				t.Errorf("error %+v, want code invalid, field %q", e.Error, tc.field)
			}
			if after := n.DB.AppliedIndex(); after != before && name != "workflow machine" {
				t.Errorf("applied index moved from %d to %d on a refused write", before, after)
			}
		})
	}
}

func TestNotFoundAndConflict(t *testing.T) {
	n := apptest.Start(t)
	for _, path := range []string{"/v1/machines/nope", "/v1/subnets/nope", "/v1/leases/198.18.0.9", "/v1/nothing"} {
		code, body := call(t, n, "GET", path, n.Token, "")
		if code != http.StatusNotFound || decodeErr(t, body).Error.Code != "not_found" {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if code, _ := call(t, n, "DELETE", "/v1/machines/nope", n.Token, ""); code != http.StatusNotFound {
		t.Errorf("DELETE missing machine: %d", code)
	}
	m := `{"interfaces":[{"mac":"02:00:00:00:00:01"}]}`
	if code, body := call(t, n, "PUT", "/v1/machines/m1", n.Token, m); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body := call(t, n, "PUT", "/v1/machines/m1", n.Token, m)
	if code != http.StatusOK {
		t.Fatalf("replace: %d %s", code, body)
	}
	var got struct{ Version uint64 }
	json.Unmarshal([]byte(body), &got)
	// A stale If-Match is a conflict and changes nothing.
	code, body = call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"hostname":"changed","interfaces":[{"mac":"02:00:00:00:00:01"}]}`, "If-Match", `"1"`)
	if code != http.StatusConflict || decodeErr(t, body).Error.Code != "conflict" {
		t.Fatalf("stale If-Match: %d %s", code, body)
	}
	_, body = call(t, n, "GET", "/v1/machines/m1", n.Token, "")
	if strings.Contains(body, "changed") {
		t.Fatal("conflicting write changed the machine")
	}
	// The right one succeeds.
	code, _ = call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"hostname":"changed","interfaces":[{"mac":"02:00:00:00:00:01"}]}`, "If-Match", `"`+itoa(got.Version)+`"`)
	if code != http.StatusOK {
		t.Fatalf("matching If-Match: %d", code)
	}
	// Another machine may not take m1's MAC.
	code, body = call(t, n, "PUT", "/v1/machines/m2", n.Token, m)
	if code != http.StatusConflict || !strings.Contains(body, "02:00:00:00:00:01") {
		t.Fatalf("duplicate MAC: %d %s", code, body)
	}
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSecretsNeverLeave puts a BMC password and then looks for it in every
// answer, in the logs, and in the files of the data directory.
func TestSecretsNeverLeave(t *testing.T) {
	n := apptest.Start(t)
	const secret = "Pw-7f3a91c4-never-shown"
	body := `{"hostname":"m1","interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":"127.0.0.1:623","username":"admin","password":"` + secret + `"}}`
	var answers []string
	record := func(code int, b string) { answers = append(answers, b) }
	record(call(t, n, "PUT", "/v1/machines/m1", n.Token, body))
	// Re-applying without the password keeps it.
	record(call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"hostname":"m1","interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":"127.0.0.1:623","username":"admin"}}`))
	// A bad request carrying the password must not echo it.
	record(call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"arch":"bad","bmc":{"address":"127.0.0.1:623","password":"`+secret+`"}}`))
	record(call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"bmc":{"address":"x","password":"`+secret+`","passwrd":"`+secret+`"}}`))
	for _, p := range []string{"/v1/machines", "/v1/machines/m1", "/v1/machines?consistent=true", "/v1/events", "/v1/cluster", "/metrics"} {
		record(call(t, n, "GET", p, n.Token, ""))
	}
	var m struct {
		BMC map[string]any `json:"bmc"`
	}
	json.Unmarshal([]byte(answers[len(answers)-5]), &m)
	if diff := cmp.Diff(map[string]any{"address": "127.0.0.1:623", "driver": "ipmi", "username": "admin", "password_set": true}, m.BMC); diff != "" {
		t.Errorf("bmc view (-want +got):\n%s", diff)
	}
	for i, a := range answers {
		if strings.Contains(a, secret) {
			t.Errorf("answer %d contains the secret: %s", i, a)
		}
		if strings.Contains(a, "sealed_password") {
			t.Errorf("answer %d contains the sealed password: %s", i, a)
		}
	}
	if strings.Contains(n.Logs.String(), secret) {
		t.Error("the logs contain the secret")
	}
	// At rest: neither the store nor the Raft log holds it in the clear.
	n.Node.Snapshot()
	filepath.Walk(n.Dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		raw, _ := os.ReadFile(path)
		if strings.Contains(string(raw), secret) {
			t.Errorf("%s holds the secret in the clear", path)
		}
		return nil
	})
	// The sealed value opens with the site key to the password.
	code, body := call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"bmc":{"address":"127.0.0.1:623","sealed_password":"AAAA"}}`)
	if code != http.StatusBadRequest || decodeErr(t, body).Error.Field != "bmc.sealed_password" {
		t.Errorf("client-set sealed_password: %d %s", code, body)
	}
}

func TestEvents(t *testing.T) {
	n := apptest.Start(t)
	base := lastSeq(t, n) // the site's own events (its first token's)
	for _, msg := range []string{"one", "two", "three"} {
		if code, body := call(t, n, "POST", "/v1/events", n.Token, `{"kind":"note","machine_id":"m1","message":"`+msg+`"}`); code != http.StatusCreated {
			t.Fatalf("post event: %d %s", code, body)
		}
	}
	code, body := call(t, n, "POST", "/v1/events", n.Token, `{"message":"no kind"}`)
	if code != http.StatusBadRequest || decodeErr(t, body).Error.Field != "kind" {
		t.Fatalf("event without kind: %d %s", code, body)
	}
	var page struct {
		Events []struct {
			Seq         uint64
			Message, By string
		}
		LastSeq uint64 `json:"last_seq"`
	}
	_, body = call(t, n, "GET", fmt.Sprintf("/v1/events?since=%d", base+1), n.Token, "")
	json.Unmarshal([]byte(body), &page)
	if page.LastSeq != base+3 || len(page.Events) != 2 || page.Events[0].Seq != base+2 || page.Events[1].Message != "three" {
		t.Fatalf("events since %d: %s", base+1, body)
	}
	if page.Events[0].By != "admin" || page.Events[1].By != "admin" {
		t.Errorf("posted events are not by the token's name, admin: %s", body)
	}
	if code, _ := call(t, n, "GET", "/v1/events?since=x", n.Token, ""); code != http.StatusBadRequest {
		t.Errorf("bad since: %d", code)
	}

	// The live stream replays from ?since= and then follows new events.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/events/stream?since=%d", n.URL, base+2), nil)
	req.Header.Set("Authorization", "Bearer "+n.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream content type %q", ct)
	}
	posted := make(chan error, 1)
	go func() {
		// Posted once the stream is open; not through call, which may
		// not fail the test from another goroutine.
		time.Sleep(200 * time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "POST", n.URL+"/v1/events", strings.NewReader(`{"kind":"note","message":"four"}`))
		req.Header.Set("Authorization", "Bearer "+n.Token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		posted <- err
	}()
	defer func() {
		if err := <-posted; err != nil {
			t.Errorf("posting the fourth event: %v", err)
		}
	}()
	var ids []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && len(ids) < 2 {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			ids = append(ids, id)
		}
	}
	if diff := cmp.Diff([]string{fmt.Sprint(base + 3), fmt.Sprint(base + 4)}, ids); diff != "" {
		t.Fatalf("streamed ids (-want +got):\n%s", diff)
	}
}

// lastSeq is the site's newest event.
func lastSeq(t *testing.T, n *apptest.Node) uint64 {
	t.Helper()
	var page struct {
		LastSeq uint64 `json:"last_seq"`
	}
	code, body := call(t, n, "GET", "/v1/events?limit=1", n.Token, "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil {
		t.Fatalf("events: %d %s", code, body)
	}
	return page.LastSeq
}

func TestTokens(t *testing.T) {
	n := apptest.Start(t)
	code, body := call(t, n, "POST", "/v1/tokens", n.Token, `{"name":"ci","role":"viewer"}`)
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, body)
	}
	var tok struct{ ID, Token string }
	json.Unmarshal([]byte(body), &tok)
	if code, _ := call(t, n, "GET", "/v1/machines", tok.Token, ""); code != http.StatusOK {
		t.Fatalf("new token refused: %d", code)
	}
	_, body = call(t, n, "GET", "/v1/tokens", n.Token, "")
	if strings.Contains(body, "hash") || !strings.Contains(body, `"ci"`) {
		t.Errorf("token list: %s", body)
	}
	if code, body := call(t, n, "GET", "/v1/tokens/"+tok.ID, n.Token, ""); code != http.StatusOK || strings.Contains(body, "hash") {
		t.Errorf("GET token: %d %s", code, body)
	}
	if code, _ := call(t, n, "DELETE", "/v1/tokens/"+tok.ID, n.Token, ""); code != http.StatusNoContent {
		t.Fatalf("delete token: %d", code)
	}
	if code, _ := call(t, n, "GET", "/v1/machines", tok.Token, ""); code != http.StatusUnauthorized {
		t.Fatalf("deleted token still works: %d", code)
	}
}

func TestCRUDRoundTrip(t *testing.T) {
	n := apptest.Start(t)
	objs := map[string]string{
		"/v1/subnets/lab":    `{"cidr":"198.18.0.0/24","gateway":"198.18.0.1","dns":["198.18.0.1"],"pools":[{"start":"198.18.0.100","end":"198.18.0.200"}],"discovery":true}`,
		"/v1/images/debian":  `{"url":"http://198.18.0.1/debian.raw.gz","format":"raw.gz","sha256":"` + strings.Repeat("ab", 32) + `"}`,
		"/v1/templates/inst": `{"actions":[{"name":"wipe","type":"disk.wipe","args":{"device":"/dev/sda"},"timeout":"5m"},{"name":"write","type":"image.write","args":{"device":"/dev/sda","image":"{{ .image }}"},"needs":["wipe"],"retries":3}]}`,
		"/v1/machines/m1":    `{"interfaces":[{"mac":"02:00:00:00:00:01","ip":"198.18.0.10","subnet":"lab"}],"disks":[{"name":"vda","size_bytes":1000}],"tags":["rack1"]}`,
		"/v1/workflows/w1":   `{"machine_id":"m1","template":"inst","values":{"image":"debian"}}`,
	}
	for _, path := range []string{"/v1/subnets/lab", "/v1/images/debian", "/v1/templates/inst", "/v1/machines/m1", "/v1/workflows/w1"} {
		if code, body := call(t, n, "PUT", path, n.Token, objs[path]); code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", path, code, body)
		}
		code, body := call(t, n, "GET", path+"?consistent=true", n.Token, "")
		if code != http.StatusOK || !strings.Contains(body, `"version"`) {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}
	_, body := call(t, n, "GET", "/v1/templates/inst", n.Token, "")
	if !strings.Contains(body, `"timeout": "5m0s"`) {
		t.Errorf("template timeout not kept: %s", body)
	}
	// An active workflow is cancelled before it is deleted.
	if code, body := call(t, n, "DELETE", "/v1/workflows/w1", n.Token, ""); code != http.StatusConflict || !strings.Contains(body, "cancel it") {
		t.Fatalf("DELETE of an active workflow: %d %s, want 409 saying to cancel it", code, body)
	}
	if code, body := call(t, n, "POST", "/v1/workflows/w1/cancel", n.Token, `{"reason":"test"}`); code != http.StatusOK || !strings.Contains(body, `"status": "failed"`) {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if _, body := call(t, n, "GET", "/v1/machines/m1", n.Token, ""); !strings.Contains(body, `"state": "failed"`) || !strings.Contains(body, "test") {
		t.Errorf("machine after its workflow was cancelled: %s", body)
	}
	// Delete everything, dependents first; then every list is empty.
	for _, path := range []string{"/v1/workflows/w1", "/v1/machines/m1", "/v1/templates/inst", "/v1/images/debian", "/v1/subnets/lab"} {
		if code, body := call(t, n, "DELETE", path, n.Token, ""); code != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", path, code, body)
		}
	}
	for _, p := range []string{"/v1/machines", "/v1/subnets", "/v1/images", "/v1/templates", "/v1/workflows", "/v1/leases"} {
		_, body := call(t, n, "GET", p, n.Token, "")
		if strings.TrimSpace(body) != "{\n  \"items\": []\n}" {
			t.Errorf("GET %s after deletes: %s", p, body)
		}
	}
}

// TestMachinePutKeepsApplianceState: re-applying a machine that names no
// state keeps the one its workflow gave it, and a client cannot set the
// current workflow.
func TestMachinePutKeepsApplianceState(t *testing.T) {
	n := apptest.Start(t)
	for _, put := range [][2]string{
		{"/v1/images/debian", `{"url":"http://198.18.0.1/debian.raw.gz","format":"raw.gz","sha256":"` + strings.Repeat("ab", 32) + `"}`},
		{"/v1/templates/inst", `{"actions":[{"name":"w","type":"image.write","args":{"device":"/dev/sda","image":"{{ .image }}"}}]}`},
		{"/v1/machines/m1", `{"interfaces":[{"mac":"02:00:00:00:00:01"}]}`},
		{"/v1/workflows/w1", `{"machine_id":"m1","template":"inst","values":{"image":"debian"}}`},
	} {
		if code, out := call(t, n, "PUT", put[0], n.Token, put[1]); code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", put[0], code, out)
		}
	}
	code, out := call(t, n, "PUT", "/v1/machines/m1", n.Token, `{"hostname":"m1","interfaces":[{"mac":"02:00:00:00:00:01"}],"workflow":"forged"}`)
	if code != http.StatusOK || !strings.Contains(out, `"state": "provisioning"`) || !strings.Contains(out, `"workflow": "w1"`) {
		t.Errorf("re-applied machine: %d %s, want it still provisioning with workflow w1", code, out)
	}
}

// TestAcceptBMCCertificate: the accept action trusts the certificate it
// names (openssl's form taken), answers the machine with it, and says what
// is wrong with a bad request, changing nothing; a client's put cannot
// set the record.
func TestAcceptBMCCertificate(t *testing.T) {
	n := apptest.Start(t)
	fp := "sha256:" + strings.Repeat("c3", 32)
	openssl := strings.TrimSuffix(strings.Repeat("C3:", 32), ":")
	put := `{"interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":"198.18.1.1","driver":"redfish","username":"admin","password":"pw-7d1e",` +
		`"certificate":{"accepted":"` + fp + `"}}}`
	if code, out := call(t, n, "PUT", "/v1/machines/m1", n.Token, put); code != http.StatusCreated || strings.Contains(out, `"certificate"`) {
		t.Fatalf("PUT m1: %d %s, want created with no certificate (a client cannot set it)", code, out)
	}
	if code, out := call(t, n, "PUT", "/v1/machines/m2", n.Token, `{"bmc":{"address":"198.18.1.2","driver":"ipmi"}}`); code != http.StatusCreated {
		t.Fatalf("PUT m2: %d %s", code, out)
	}
	for name, tc := range map[string]struct {
		path, body  string
		code        int
		field, text string
	}{
		"no fingerprint":    {"/v1/machines/m1/bmc/accept-certificate", `{}`, 400, "fingerprint", "is required"},
		"not a fingerprint": {"/v1/machines/m1/bmc/accept-certificate", `{"fingerprint":"c3c3"}`, 400, "fingerprint", `c3c3\" is not a SHA-256 fingerprint`},
		"unknown field":     {"/v1/machines/m1/bmc/accept-certificate", `{"fingerprint":"` + fp + `","force":true}`, 400, "force", "unknown field"},
		"IPMI":              {"/v1/machines/m2/bmc/accept-certificate", `{"fingerprint":"` + fp + `"}`, 400, "bmc.driver", "ipmi"},
		"unknown machine":   {"/v1/machines/m9/bmc/accept-certificate", `{"fingerprint":"` + fp + `"}`, 404, "", "m9"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out := call(t, n, "POST", tc.path, n.Token, tc.body)
			e := decodeErr(t, out)
			if code != tc.code || e.Error.Field != tc.field || !strings.Contains(out, tc.text) {
				t.Errorf("%d %s, want %d on field %q saying %s", code, out, tc.code, tc.field, tc.text)
			}
		})
	}
	if _, out := call(t, n, "GET", "/v1/machines/m1", n.Token, ""); strings.Contains(out, `"certificate"`) {
		t.Fatalf("refused requests changed m1: %s", out)
	}
	code, out := call(t, n, "POST", "/v1/machines/m1/bmc/accept-certificate", n.Token, `{"fingerprint":"`+openssl+`"}`)
	var m struct {
		BMC struct {
			Certificate struct{ Accepted, Presented string }
			Password    string
			PasswordSet bool `json:"password_set"`
		}
	}
	if err := json.Unmarshal([]byte(out), &m); code != http.StatusOK || err != nil || m.BMC.Certificate.Accepted != fp {
		t.Fatalf("accept: %d %s, want m1 with %s accepted", code, out, fp)
	}
	if m.BMC.Password != "" || !m.BMC.PasswordSet || strings.Contains(out, "pw-7d1e") || strings.Contains(out, "sealed") {
		t.Errorf("the answer shows a secret: %s", out)
	}
	if code, _ := call(t, n, "POST", "/v1/machines/m1/bmc/accept-certificate", "", `{"fingerprint":"`+fp+`"}`); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
}
