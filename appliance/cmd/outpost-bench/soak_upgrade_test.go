package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/soak"
)

// A rolling upgrade replaces a cluster's leader while it is old, else
// its first old node, each node once: with n1 leading and leadership
// moving as each leader stops, every node is upgraded in turn.
func TestNextUpgrade(t *testing.T) {
	for _, c := range []struct {
		old    []string
		leader string
		want   string
	}{
		{[]string{"n1", "n2", "n3"}, "n2", "n2"},
		{[]string{"n1", "n3"}, "n2", "n1"}, // the leader is new
		{[]string{"n1", "n3"}, "", "n1"},   // no leader known
		{[]string{"n3"}, "n3", "n3"},
		{nil, "n1", ""},
	} {
		if got := nextUpgrade(c.old, c.leader); got != c.want {
			t.Errorf("nextUpgrade(%v, %q) = %q, want %q", c.old, c.leader, got, c.want)
		}
	}
	// Leadership passes to the next node each time its leader stops.
	old, leader, done := []string{"c1", "c2", "c3"}, "c2", []string(nil)
	for len(old) > 0 {
		id := nextUpgrade(old, leader)
		done = append(done, id)
		old = slices.DeleteFunc(old, func(o string) bool { return o == id })
		if len(old) > 0 {
			leader = old[len(old)-1]
		}
	}
	if want := []string{"c2", "c3", "c1"}; !slices.Equal(done, want) {
		t.Errorf("upgraded %v, want %v", done, want)
	}
}

// The schedule's kinds: an upgrade first when there is a release to
// upgrade from, and none without one, whatever the list says.
func TestSoakScheduleKinds(t *testing.T) {
	for _, c := range []struct {
		list, from string
		want       []soak.Kind
	}{
		{"", "", soak.Kinds},
		{"", "75c47a5", append([]soak.Kind{soak.Upgrade}, soak.Kinds...)},
		{"site.kill, wan.flap", "v1", []soak.Kind{soak.Upgrade, soak.SiteKill, soak.WANFlap}},
		{"site.kill,upgrade", "v1", []soak.Kind{soak.Upgrade, soak.SiteKill}},
		{"site.kill", "", []soak.Kind{soak.SiteKill}},
	} {
		if got := soakScheduleKinds(c.list, c.from); !slices.Equal(got, c.want) {
			t.Errorf("soakScheduleKinds(%q, %q) = %v, want %v", c.list, c.from, got, c.want)
		}
	}
}

// A site in the middle of a rolling upgrade, its leader of this release
// and its two other nodes of the release the soak upgrades from
// (-soak-upgrade-from), which knows neither PutSubnet (58) nor
// QuarantineAddress (55): a subnet put through the leader is applied by
// every node, and none stops. (Before the leader checked what its
// members apply, it proposed PutSubnet: each old node panicked applying
// a command type it did not know, again at each restart, and the site
// lost its quorum.) Once the old nodes run this release too, the site
// still serves puts.
func TestRollingUpgradeSkew(t *testing.T) {
	lab.Require(t, "root", "ip", "git")
	ctx := t.Context()
	root, err := stormModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	oldBin, newBin := buildSkewBins(t, root, dir, "applianced", "./appliance/cmd/applianced")
	sw := newDHCPSwitch(t, site3Nodes)
	// n1 bootstraps the site, so it leads: a new node leading old ones.
	site, auth, err := startSiteOf(ctx, sw, dir, []string{newBin, oldBin, oldBin}, nil, func(i int, ndir string) ([]string, error) {
		return outpostArgs(ndir, fmt.Sprintf("n%d", i+1), site3Site(i), "info")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(site.stop)
	apis := make([]*client.Client, len(sw.nodes))
	for i, ns := range sw.nodes {
		if apis[i], err = auth.client(ns, site3Addr(i)+":7000", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	putAndApplied := func(when string) {
		t.Helper()
		if err := apis[0].Put(ctx, "subnets", stormSubnet.Name, stormSubnet, nil); err != nil {
			t.Fatalf("put the subnet through n1 %s: %v", when, err)
		}
		lst, err := apis[0].Cluster(ctx)
		if err != nil || lst.State != "Leader" {
			t.Fatalf("n1 is %s (%v), want the leader", lst.State, err)
		}
		for i, api := range apis {
			err := pollEvery(ctx, 200*time.Millisecond, time.Minute, func() error {
				if p := site.procs[i]; p.exited() {
					return fmt.Errorf("exited: %s", firstLine(p.log, "panic:"))
				}
				st, err := api.Cluster(ctx)
				if err == nil && st.AppliedIndex < lst.CommitIndex {
					err = fmt.Errorf("applied %d of %d", st.AppliedIndex, lst.CommitIndex)
				}
				return err
			})
			if err != nil {
				t.Fatalf("n%d after the subnet's put %s: %v", i+1, when, err)
			}
		}
	}
	putAndApplied("with n2 and n3 old")
	// The old nodes upgraded, one at a time, as the soak does.
	for i := 1; i < len(site.procs); i++ {
		site.procs[i].stop()
		args, err := outpostArgs(filepath.Join(dir, fmt.Sprintf("n%d", i+1)), fmt.Sprintf("n%d", i+1), site3Site(i), "info")
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-join", "https://"+site3Addr(0)+":7000", "-join-ca-fingerprint", auth.fp)
		p, err := startProc(sw.nodes[i], filepath.Join(dir, fmt.Sprintf("n%d", i+1), "applianced-new.log"),
			[]string{"OUTPOST_JOIN_TOKEN=" + auth.token}, newBin, args...)
		if err != nil {
			t.Fatal(err)
		}
		site.procs[i] = p
	}
	putAndApplied("with every node upgraded")
}

// buildSkewBins builds the daemon name (package pkg) of
// -soak-upgrade-from and of this tree into dir, as name-old and name.
func buildSkewBins(t *testing.T, root, dir, name, pkg string) (oldBin, newBin string) {
	ctx := t.Context()
	src, remove, err := checkoutRelease(ctx, root, *soakUpgradeFrom, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	if oldBin, err = goBuildIn(ctx, src, dir, name+"-old", pkg, "-trimpath"); err != nil {
		t.Fatal(err)
	}
	if newBin, err = goBuild(ctx, dir, name, pkg); err != nil {
		t.Fatal(err)
	}
	return oldBin, newBin
}

// firstLine is the first line of the file at path that holds sub, or
// the file's last lines if none does.
func firstLine(path, sub string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	for line := range strings.Lines(string(raw)) {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return lastLines(path, 10)
}
