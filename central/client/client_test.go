package client_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/testcentral"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
)

// strict reads raw into v refusing unknown fields: the client's types
// hold every field central answers.
func strict(t *testing.T, what string, raw json.RawMessage, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s: central answers a field the client does not know: %v\n%s", what, err, raw)
	}
}

// TestAgainstCentral: every call against a real (replicated) central,
// whose answers decode strictly into the client's types.
func TestAgainstCentral(t *testing.T) {
	cen := testcentral.Start(t, testcentral.Replicated(t))
	c := client.New(cen.URL, cen.Token, nil)
	ctx := t.Context()

	made, err := c.CreateSite(ctx, "fra-1", "Frankfurt")
	if err != nil || made.Credential == "" || made.Site.Name != "Frankfurt" {
		t.Fatalf("create site: %+v, %v", made, err)
	}
	rev, err := c.Put(ctx, "fra-1", "orders", "o1", json.RawMessage(`{"action":"power_on","machine_id":"m1"}`))
	if err != nil || rev != 1 {
		t.Fatalf("put order: revision %d, %v", rev, err)
	}
	orders, err := c.List(ctx, "fra-1", "orders")
	if err != nil || len(orders) != 1 {
		t.Fatalf("orders: %s, %v", orders, err)
	}
	if rev, err := c.Delete(ctx, "fra-1", "orders", "o1"); err != nil || rev != 2 {
		t.Fatalf("delete order: revision %d, %v", rev, err)
	}
	var e *client.Error
	if _, err := c.Get(ctx, "fra-1", "orders", "o1"); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Errorf("the deleted order: %v, want 404", err)
	}

	var raw json.RawMessage
	for path, v := range map[string]any{
		"/v1/sites/fra-1": new(client.Site), "/v1/cluster": new(client.ClusterStatus),
	} {
		if err := c.Do(ctx, http.MethodGet, path, nil, &raw); err != nil {
			t.Fatal(err)
		}
		strict(t, path, raw, v)
	}
	st, err := c.Cluster(ctx)
	if err != nil || st.Leader != "c1" || len(st.Members) != 1 || st.Members[0].Fingerprint == "" {
		t.Errorf("cluster: %+v, %v", st, err)
	}

	tok, err := c.CreateToken(ctx, httpapi.TokenRequest{Name: "tech", Role: access.Viewer})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(cen.URL, tok.Token, nil).Sites(ctx); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Errorf("a deleted token: %v, want 401", err)
	}
}

// TestArtifactCalls: the artifact calls against a real central, whose
// answers decode strictly into the client's types: push (with progress
// and the digest checked), get, list, download from a byte on, register,
// delete.
func TestArtifactCalls(t *testing.T) {
	cen := testcentral.Start(t, testcentral.Replicated(t))
	c := client.New(cen.URL, cen.Token, nil)
	ctx := t.Context()
	body := bytes.Repeat([]byte("outpost "), 300_000)
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	var last int64
	a, err := c.PushArtifact(ctx, bytes.NewReader(body), int64(len(body)), client.PushOptions{SHA256: digest, Name: "n", Type: "file",
		Progress: func(sent int64) { last = sent }})
	if err != nil || a.SHA256 != digest || a.Size != int64(len(body)) || last != int64(len(body)) {
		t.Fatalf("push: %+v, %v (progress %d)", a, err, last)
	}
	var e *client.Error
	if _, err := c.PushArtifact(ctx, bytes.NewReader(body[1:]), -1, client.PushOptions{SHA256: digest}); !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Field != "sha256" {
		t.Errorf("a push of other bytes: %v, want 400 naming sha256", err)
	}
	var raw json.RawMessage
	for path, v := range map[string]any{"/v1/artifacts/" + digest: new(client.Artifact), "/v1/sites/fra-1": new(client.Site)} {
		if path == "/v1/sites/fra-1" {
			if _, err := c.CreateSite(ctx, "fra-1", ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Do(ctx, http.MethodGet, path, nil, &raw); err != nil {
			t.Fatal(err)
		}
		strict(t, path, raw, v)
	}
	if list, err := c.Artifacts(ctx); err != nil || len(list) != 1 || list[0].Name != "n" {
		t.Errorf("list: %+v, %v", list, err)
	}
	rc, err := c.ArtifactContent(ctx, "sha256:"+digest, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body[1000:]) {
		t.Errorf("content from byte 1000: %d bytes, want %d", len(got), len(body)-1000)
	}
	reg, err := c.RegisterArtifact(ctx, client.RegisterArtifactRequest{URL: "http://127.0.0.1:1/x", SHA256: strings.Repeat("ab", 32), Size: 5})
	if err != nil || reg.State != "fetching" {
		t.Errorf("register: %+v, %v", reg, err)
	}
	for _, d := range []string{digest, reg.SHA256} {
		if err := c.DeleteArtifact(ctx, d); err != nil {
			t.Errorf("delete %s: %v", d, err)
		}
	}
	if _, err := c.Artifact(ctx, digest); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Errorf("a deleted artifact: %v, want 404", err)
	}
}

// A single central has no cluster: IsSingle tells its answer.
func TestSingleCentral(t *testing.T) {
	cen := testcentral.Start(t)
	_, err := client.New(cen.URL, cen.Token, nil).Cluster(t.Context())
	if !client.IsSingle(err) {
		t.Errorf("cluster of a single central: %v", err)
	}
}
