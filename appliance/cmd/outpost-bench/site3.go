package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/internal/pki"
)

// siteAuth is what opens the API of every node of a site started by
// startSite: the admin token and the fingerprint of the site's API CA.
type siteAuth struct {
	token, fp string
}

// client is an admin client of the API at addr (host:port), dialled from
// ns, whose requests time out after timeout.
func (a siteAuth) client(ns *lab.Netns, addr string, timeout time.Duration) (*client.Client, error) {
	tr, err := client.PinnedTransport(client.Pin{Fingerprint: a.fp})
	if err != nil {
		return nil, err
	}
	tr.DialContext = ns.DialContext
	return client.NewWithHTTP("https://"+addr, a.token, &http.Client{Timeout: timeout, Transport: tr}), nil
}

// startSite starts one applianced per node host of sw, node i with the
// flags nodeArgs(i, its directory dir/n<i+1>) gives and its log in that
// directory: the first bootstraps the site, the others join it by its
// API CA's fingerprint and admin token. It returns once every node sees
// the same leader and three voters, with what opens every node's API.
// (dhcp.nodes3's and provision.storm's 3-node sites.)
func startSite(ctx context.Context, sw *dhcpSwitch, dir, bin string, nodeArgs func(i int, ndir string) ([]string, error)) (*dhcpSite, siteAuth, error) {
	bins := make([]string, len(sw.nodes))
	for i := range bins {
		bins[i] = bin
	}
	return startSiteOf(ctx, sw, dir, bins, nil, nodeArgs)
}

// startSiteOf is startSite with node i's applianced bins[i] (a site
// whose nodes run different releases, as in a rolling upgrade) and
// envs[i] added to its environment (envs may be nil).
func startSiteOf(ctx context.Context, sw *dhcpSwitch, dir string, bins []string, envs [][]string, nodeArgs func(i int, ndir string) ([]string, error)) (_ *dhcpSite, _ siteAuth, err error) {
	s := &dhcpSite{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	var api *client.Client // the first node's
	var auth siteAuth
	var join []string // what the others need to join it
	var joinEnv []string
	for i, ns := range sw.nodes {
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i+1))
		args, err := nodeArgs(i, ndir)
		if err != nil {
			return nil, auth, err
		}
		var env []string
		if envs != nil {
			env = envs[i]
		}
		p, err := startProc(ns, filepath.Join(ndir, "applianced.log"), append(env, joinEnv...), bins[i], append(args, join...)...)
		if err != nil {
			return nil, auth, err
		}
		s.procs = append(s.procs, p)
		if i > 0 {
			continue
		}
		if api, auth.token, auth.fp, err = waitNodeAPI(ctx, ns, p, filepath.Join(ndir, "data"), site3Addr(0)); err != nil {
			return nil, auth, err
		}
		join = []string{"-join", "https://" + site3Addr(0) + ":7000", "-join-ca-fingerprint", auth.fp}
		joinEnv = []string{"OUTPOST_JOIN_TOKEN=" + auth.token}
	}
	if err := pollEvery(ctx, 200*time.Millisecond, 2*time.Minute, func() error { return siteFormed(ctx, api, s) }); err != nil {
		return nil, auth, fmt.Errorf("the site: %w; %s", err, s.logTail())
	}
	return s, auth, nil
}

// waitNodeAPI waits (up to a minute) for a bootstrapping node's admin
// token and API CA in data, and returns a client of its API at addr
// (dialled from ns), the token and the CA's fingerprint.
func waitNodeAPI(ctx context.Context, ns *lab.Netns, p *benchProc, data, addr string) (api *client.Client, token, fp string, err error) {
	err = pollEvery(ctx, 100*time.Millisecond, time.Minute, func() error {
		if p.exited() {
			return errors.New("exited")
		}
		raw, err := os.ReadFile(filepath.Join(data, "admin.token"))
		if err != nil || !strings.HasSuffix(string(raw), "\n") {
			return fmt.Errorf("no admin token yet (%v)", err)
		}
		token = strings.TrimSpace(string(raw))
		// The API CA is written before the token.
		pem, err := os.ReadFile(filepath.Join(data, "api-ca.pem"))
		if err != nil {
			return err
		}
		fp, err = pki.PEMFingerprint(pem)
		return err
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("node API: %w; %s", err, p.logTail())
	}
	api, err = siteAuth{token: token, fp: fp}.client(ns, addr+":7000", 10*time.Second)
	return api, token, fp, err
}

// siteFormed says why the site is not formed yet (a leader and every
// node a voter, as the first node sees it), or nil.
func siteFormed(ctx context.Context, api *client.Client, s *dhcpSite) error {
	if s.exited() {
		return errors.New("a node exited")
	}
	st, err := api.Cluster(ctx)
	if err != nil {
		return err
	}
	voters := 0
	for _, m := range st.Members {
		if m.Suffrage == "Voter" {
			voters++
		}
	}
	if st.LeaderID == "" || voters != len(s.procs) {
		return fmt.Errorf("leader %q, %d voters of %d nodes", st.LeaderID, voters, len(s.procs))
	}
	return nil
}
