package site_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

var nonceRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestCentralOrderNonce places an order from central (a desired revision,
// as the sync client applies it) on a real node: the workflow it makes
// gets a fresh nonce, as an order placed through the API does, so its
// installer credential depends on more than the order's id. When central
// places an order of the same id again (the first one ended and was
// deleted), the new workflow gets a new nonce, and the credential minted
// for the first workflow does not open the second.
func TestCentralOrderNonce(t *testing.T) {
	n := apptest.Start(t)
	ctx := t.Context()
	creds := provision.NewCredentials(n.Key.Derive("outpost agent credentials v1"))
	// The agent is on loopback, where no lease is: its first request
	// claims its workflow, as under proxyDHCP.
	agents := httptest.NewServer(provision.New(provision.Config{Site: n.Site, Store: n.DB, Credentials: creds,
		Binding: provision.BindFirstClaim, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}).Handler())
	t.Cleanup(agents.Close)

	if _, err := n.Site.PutTemplate(ctx, &store.Template{Name: site.DefaultProvisionTemplate, Actions: []store.Action{
		{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}},
	}}, 0); err != nil {
		t.Fatal(err)
	}
	m := apptest.Machine("m1", 1)
	m.Interfaces[0].IP = "198.18.0.10"
	m.BMC = &store.BMC{Address: "198.18.1.10:623", Driver: "ipmi", Username: "admin"}
	if _, err := n.Site.PutMachine(ctx, m, 0); err != nil {
		t.Fatal(err)
	}
	order := json.RawMessage(`{"id":"o1","action":"provision","machine_id":"m1","image":"none"}`)

	first := centralOrder(t, n, 1, order)
	if !nonceRE.MatchString(first.Nonce) {
		t.Fatalf("the workflow of central's order has nonce %q, want 32 random hex digits", first.Nonce)
	}
	oldCred := creds.Workflow(first)
	if code := agentGet(t, agents.URL, oldCred); code != http.StatusOK {
		t.Fatalf("the first workflow's own credential: %d, want 200", code)
	}

	// The first order ends (its workflow is cancelled, its jobs run) and
	// goes, with its workflow and jobs.
	if _, err := n.Site.CancelWorkflow(ctx, "o1", "replaced"); err != nil {
		t.Fatal(err)
	}
	for _, j := range []string{"o1-pxe", "o1-cycle"} {
		if err := n.Site.StartJob(ctx, j, 1, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := n.Site.FinishJob(ctx, j, 1, site.JobResult{OK: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, del := range []struct {
		k   site.Kind
		key string
	}{{site.Orders, "o1"}, {site.Jobs, "o1-pxe"}, {site.Jobs, "o1-cycle"}, {site.Workflows, "o1"}} {
		if err := n.Site.Delete(ctx, del.k, del.key, 0); err != nil {
			t.Fatalf("delete %s: %v", del.key, err)
		}
	}

	second := centralOrder(t, n, 2, order)
	if !nonceRE.MatchString(second.Nonce) || second.Nonce == first.Nonce {
		t.Fatalf("the second workflow o1 has nonce %q, the first had %q: want a new one", second.Nonce, first.Nonce)
	}
	if code := agentGet(t, agents.URL, oldCred); code != http.StatusUnauthorized {
		t.Errorf("the first workflow's credential on the second workflow of the same id: %d, want 401", code)
	}
	if code := agentGet(t, agents.URL, creds.Workflow(second)); code != http.StatusOK {
		t.Errorf("the second workflow's own credential: %d, want 200", code)
	}
}

// centralOrder applies revision rev of central's desired state, holding
// order, and returns the workflow it made.
func centralOrder(t *testing.T, n *apptest.Node, rev uint64, order json.RawMessage) *store.Workflow {
	t.Helper()
	_, res, err := n.Site.ApplyDesired(t.Context(), &site.Desired{Revision: rev, Changes: []site.DesiredChange{
		{Kind: site.DesiredOrder, Key: "o1", Object: order},
	}})
	if err != nil || !res.Applied || res.Refused != 0 {
		t.Fatalf("desired revision %d: %+v, %v", rev, res, err)
	}
	var w *store.Workflow
	if err := n.DB.View(func(tx *store.Tx) (err error) { w, err = store.Get[store.Workflow](tx, "o1"); return err }); err != nil {
		t.Fatal(err)
	}
	return w
}

// agentGet asks the agent API for the caller's workflow with token and
// returns the status.
func agentGet(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+agentproto.PathWorkflow, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
