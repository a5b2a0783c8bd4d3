package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/site"
)

// Every route that takes a body refuses an empty or null one, naming the
// body, and changes nothing: PUT /v1/machines/x with null used to store
// a machine made of its id alone.
func TestNullBody(t *testing.T) {
	n := apptest.Start(t)
	routes := []string{
		"PUT /v1/machines/m1", "PUT /v1/subnets/s1", "PUT /v1/images/i1", "PUT /v1/templates/t1",
		"PUT /v1/workflows/w1", "PUT /v1/orders/o1", "PUT /v1/settings", "POST /v1/events",
		"POST /v1/tokens", "POST /v1/cluster/join",
	}
	for _, route := range routes {
		for _, body := range []string{"null", " null\n", ""} {
			t.Run(fmt.Sprintf("%s %q", route, body), func(t *testing.T) {
				method, path, _ := strings.Cut(route, " ")
				before := n.DB.AppliedIndex()
				code, answer := call(t, n, method, path, n.Token, body)
				if code != http.StatusBadRequest {
					t.Fatalf("%d %s, want 400", code, answer)
				}
				if e := decodeErr(t, answer); e.Error.Code != "invalid" || e.Error.Field != "body" {
					t.Errorf("error %+v, want invalid naming the body", e.Error)
				}
				if after := n.DB.AppliedIndex(); after != before {
					t.Errorf("applied index moved from %d to %d", before, after)
				}
			})
		}
	}
	if code, body := call(t, n, "GET", "/v1/machines/m1", n.Token, ""); code != http.StatusNotFound {
		t.Errorf("after the null PUTs, GET /v1/machines/m1: %d %s", code, body)
	}
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// A body over the limit is 413 naming the body, not 400 "unexpected
// EOF", whether its length is announced or not; nothing is stored.
func TestBodyTooLarge(t *testing.T) {
	n := apptest.Start(t)
	for name, chunked := range map[string]bool{"announced": false, "chunked": true} {
		t.Run(name, func(t *testing.T) {
			const size = 100 << 20
			body := io.LimitReader(io.MultiReader(strings.NewReader(`{"hostname":"`), zeros{}), size)
			if chunked {
				body = io.MultiReader(body) // hides the length
			}
			req, _ := http.NewRequestWithContext(t.Context(), "PUT", n.URL+"/v1/machines/m1", body)
			if !chunked {
				req.ContentLength = size
			}
			resp, raw := sendAs(t, req, n.Token)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d %s, want 413", resp.StatusCode, raw)
			}
			if e := decodeErr(t, raw); e.Error.Code != "too_large" || e.Error.Field != "body" {
				t.Errorf("error %+v, want too_large naming the body", e.Error)
			}
		})
	}
	if code, body := call(t, n, "GET", "/v1/machines/m1", n.Token, ""); code != http.StatusNotFound {
		t.Errorf("GET /v1/machines/m1: %d %s", code, body)
	}
}

// fullDisk is a Raft log whose disk is full: every commit fails as
// raftnode's does when its log cannot be written.
type fullDisk struct{}

func (fullDisk) Commit(context.Context, []byte) (site.Result, error) {
	return site.Result{}, fmt.Errorf("raftnode: commit: %w",
		&os.PathError{Op: "write", Path: "/var/lib/outpost/raft/raft.db", Err: syscall.ENOSPC})
}

// A write the store cannot take because the disk is full is 503 with
// Retry-After, saying so, not 500; the path of the file stays in the
// log.
func TestDiskFull(t *testing.T) {
	n := apptest.Start(t)
	logs := &apptest.SyncBuffer{}
	srv := httptest.NewServer(api.New(api.Config{
		Site:  site.NewProposer(site.ProposerConfig{Log: fullDisk{}, Store: n.DB, Key: n.Key}),
		Store: n.DB, Cluster: n.Node, Log: slogTo(logs),
	}).Handler())
	defer srv.Close()
	full := &apptest.Node{URL: srv.URL, Token: n.Token}
	for _, write := range []struct{ method, path, body string }{
		{"PUT", "/v1/machines/m1", `{"interfaces":[{"mac":"02:00:00:00:00:01"}]}`},
		{"POST", "/v1/events", `{"kind":"note","message":"hello"}`},
		{"DELETE", "/v1/subnets/s1", ""},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), write.method, full.URL+write.path, strings.NewReader(write.body))
		resp, raw := sendAs(t, req, n.Token)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %d (Retry-After %q) %s, want 503 with Retry-After", write.method, write.path,
				resp.StatusCode, resp.Header.Get("Retry-After"), raw)
			continue
		}
		if e := decodeErr(t, raw); e.Error.Code != "unavailable" || !strings.Contains(e.Error.Message, "disk is full") || strings.Contains(raw, "raft.db") {
			t.Errorf("%s %s: %+v, want unavailable saying the disk is full, without the path", write.method, write.path, e.Error)
		}
	}
	if !strings.Contains(logs.String(), "no space left on device") {
		t.Errorf("the log does not say why:\n%s", logs)
	}
}

// Metric labels are bounded: a request with a made-up method is counted
// as "other", never under its own name.
func TestMetricMethodsBounded(t *testing.T) {
	n := apptest.Start(t)
	for i := range 5 {
		call(t, n, fmt.Sprintf("M%d", i), "/v1/machines", n.Token, "")
	}
	_, metrics := call(t, n, "GET", "/metrics", "", "")
	if strings.Contains(metrics, `method="M`) || !strings.Contains(metrics, `method="other"`) {
		t.Errorf("made-up methods in the metrics:\n%s", grepLines(metrics, "outpost_api_requests_total"))
	}
}

// sendAs sends req with token and returns the response and its body.
func sendAs(t *testing.T, req *http.Request, token string) (*http.Response, string) {
	t.Helper()
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(raw)
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A subnet no DHCP server could serve, or one overlapping another, is
// refused naming the field; nothing is stored.
func TestUnservableSubnets(t *testing.T) {
	n := apptest.Start(t)
	if code, body := call(t, n, "PUT", "/v1/subnets/lab", n.Token, `{"cidr":"198.18.0.0/24"}`); code != http.StatusCreated {
		t.Fatalf("a subnet: %d %s", code, body)
	}
	for path, body := range map[string]string{
		"/v1/subnets/all":   `{"cidr":"0.0.0.0/0","pools":[{"start":"0.0.0.1","end":"255.255.255.254"}]}`,
		"/v1/subnets/wider": `{"cidr":"198.18.0.0/16"}`,
	} {
		code, answer := call(t, n, "PUT", path, n.Token, body)
		if e := decodeErr(t, answer); code != http.StatusBadRequest || e.Error.Field != "cidr" {
			t.Errorf("PUT %s: %d %s, want 400 naming cidr", path, code, answer)
		}
		if code, _ := call(t, n, "GET", path, n.Token, ""); code != http.StatusNotFound {
			t.Errorf("GET %s after the refusal: %d", path, code)
		}
	}
}
