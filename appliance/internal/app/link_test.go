package app

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/central/testcentral"
)

// createCentralSite creates site id at central and writes its
// credential to a file, whose path it returns.
func createCentralSite(t *testing.T, cen *testcentral.Central, id string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"id": id, "name": id})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, cen.URL+"/v1/sites", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cen.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Credential string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.Credential == "" {
		t.Fatalf("create site %s at central: %d %v", id, resp.StatusCode, err)
	}
	path := filepath.Join(t.TempDir(), "site.credential")
	if err := os.WriteFile(path, []byte(out.Credential), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// overviewPage signs in to base's console with token and returns the
// site overview as the node renders it.
func overviewPage(t *testing.T, base, token string) string {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/site", nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /site: %d %s", resp.StatusCode, page)
	}
	return string(page)
}

// linkOnPage reads the link's state, reporter and error off an overview.
func linkOnPage(page string) (state, reporter, lastErr string) {
	find := func(re string) string {
		if m := regexp.MustCompile(re).FindStringSubmatch(page); m != nil {
			return m[1]
		}
		return ""
	}
	return find(`data-test="central-link"><span class="\w+">(\w+)</span>`),
		find(`data-test="central-reporter">([^<]*)<`), find(`data-test="central-error">([^<]*)<`)
}

// TestLinkOnEveryNode: a three-node site synced with a real central.
// Every node, a follower's console and API included, shows the link the
// leader recorded, naming the leader; when central stops, every node
// shows it disconnected with the error, and connected again once
// central is back.
func TestLinkOnEveryNode(t *testing.T) {
	cen := testcentral.Start(t)
	cred := createCentralSite(t, cen, "ams2")
	withCentral := func(cfg *config.Config) *config.Config {
		cfg.CentralURL, cfg.InsecureCentral, cfg.SiteID, cfg.SiteCredentialFile = cen.URL, true, "ams2", cred
		return cfg
	}
	cfg1 := withCentral(testConfig(t))
	n1 := startNode(t, cfg1)
	token := waitOut(t, n1.out, n1.done, regexp.MustCompile(`admin token \(shown once; also saved to .*\):\n  (\S+)\n`))[1]
	urls := []string{cfg1.APIURL}
	running, apiURL := map[string]*runningNode{cfg1.NodeID: n1}, map[string]string{cfg1.NodeID: cfg1.APIURL}
	for _, id := range []string{"node2", "node3"} {
		cfg := withCentral(testConfig(t))
		cfg.NodeID, cfg.Join, cfg.JoinTokenFile = id, cfg1.APIURL, cfg1.AdminTokenPath()
		running[id], apiURL[id] = startNode(t, cfg), cfg.APIURL
		urls = append(urls, cfg.APIURL)
	}
	ctx := t.Context()
	// everyNode waits until every node's API and console show the link
	// as want says, and returns the leader that recorded it.
	everyNode := func(what string, want func(l *api.SyncStatus, state, reporter, lastErr string) bool) {
		t.Helper()
		for _, u := range urls {
			waitFor(t, what+" on "+u, func() bool {
				var st api.SyncStatus
				if err := client.New(u, token).Do(ctx, http.MethodGet, "/v1/sync", nil, &st); err != nil || st.Link == nil {
					return false
				}
				state, reporter, lastErr := linkOnPage(overviewPage(t, u, token))
				return want(&st, state, reporter, lastErr)
			})
		}
	}
	leader := func() string {
		st, err := client.New(urls[0], token).Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.LeaderID
	}
	connected := func(l *api.SyncStatus, state, reporter, lastErr string) bool {
		return l.Link.Connected && l.Link.Node == leader() && l.Link.LastError == "" && !l.Link.LastSync.IsZero() &&
			strings.HasPrefix(l.Link.Central, "ws://") && state == "connected" && reporter == l.Link.Node && lastErr == ""
	}
	everyNode("the link connected", connected)

	cen.Stop()
	everyNode("the link down", func(l *api.SyncStatus, state, reporter, lastErr string) bool {
		return !l.Link.Connected && l.Link.LastError != "" && l.Link.Node == leader() &&
			state == "disconnected" && reporter == l.Link.Node && html.UnescapeString(lastErr) == l.Link.LastError
	})

	cen.Restart()
	everyNode("the link connected again", connected)

	// The leader stops (handing leadership on): the new leader records
	// its own link, named by it, on the nodes left.
	old := leader()
	running[old].stop()
	urls = slices.DeleteFunc(urls, func(u string) bool { return u == apiURL[old] })
	everyNode("the new leader's link", func(l *api.SyncStatus, state, reporter, lastErr string) bool {
		return l.Link.Node != old && connected(l, state, reporter, lastErr)
	})
}
