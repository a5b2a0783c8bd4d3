package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/soak"
)

// soakUpgradeFrom is the release the soak starts from and upgrades away
// from while it runs. There are no tags: 75c47a5 is main before the
// soak's first merge (20 first-parent commits before this flag), whose
// site knows neither QuarantineAddress (55) nor PutSubnet (58), so a new
// node leading old ones is the skew the Raft log must survive; it takes
// the flags the soak starts applianced and centrald with. A named commit,
// not HEAD~20, so that a run on a later main starts from the same one.
var soakUpgradeFrom = flag.String("soak-upgrade-from", "75c47a5",
	`git ref of the release the soak's site and central start from, upgraded to the current one node by node while it runs ("": no upgrade)`)

// soakBins are the daemons a soak runs: those it starts from (old) and,
// with an upgrade, those it upgrades to (new; else the same).
type soakBins struct {
	oldCentrald, oldApplianced string
	newCentrald, newApplianced string
}

// upgrades says whether the soak upgrades its nodes.
func (b soakBins) upgrades() bool { return b.oldApplianced != b.newApplianced }

// buildSoakBins builds the current daemons and, when ref is set, those
// of ref (buildRelease); remove deletes them all.
func buildSoakBins(ctx context.Context, root, ref string) (b soakBins, remove func(), err error) {
	b.newCentrald, b.newApplianced, remove, err = buildDaemons(ctx, "soak")
	if err != nil || ref == "" {
		b.oldCentrald, b.oldApplianced = b.newCentrald, b.newApplianced
		return b, remove, err
	}
	removeNew := remove
	dir, err := os.MkdirTemp("", "outpost-bench-soak-old-")
	if err != nil {
		removeNew()
		return b, nil, err
	}
	remove = func() { removeNew(); os.RemoveAll(dir) }
	if b.oldCentrald, b.oldApplianced, err = buildRelease(ctx, root, ref, dir); err != nil {
		remove()
		return b, nil, err
	}
	return b, remove, nil
}

// buildRelease builds centrald and applianced of git ref ref of the
// repository at root into dir (checkoutRelease); -trimpath, so that the
// build cache serves a checkout in another temporary directory.
func buildRelease(ctx context.Context, root, ref, dir string) (centrald, applianced string, err error) {
	src, remove, err := checkoutRelease(ctx, root, ref, dir)
	if err != nil {
		return "", "", err
	}
	defer remove()
	if centrald, err = goBuildIn(ctx, src, dir, "centrald-old", "./central/cmd/centrald", "-trimpath"); err != nil {
		return "", "", fmt.Errorf("soak: release %s: %w", ref, err)
	}
	if applianced, err = goBuildIn(ctx, src, dir, "applianced-old", "./appliance/cmd/applianced", "-trimpath"); err != nil {
		return "", "", fmt.Errorf("soak: release %s: %w", ref, err)
	}
	return centrald, applianced, nil
}

// checkoutRelease checks git ref ref of the repository at root out
// into a detached worktree in dir; remove removes it (with git's
// administrative files).
func checkoutRelease(ctx context.Context, root, ref, dir string) (src string, remove func(), err error) {
	src = filepath.Join(dir, "src")
	if out, err := gitIn(ctx, root, "worktree", "add", "--detach", src, ref); err != nil {
		return "", nil, fmt.Errorf("soak: check out the release %q to upgrade from: %w: %s", ref, err, out)
	}
	rev, _ := gitIn(ctx, src, "rev-parse", "--short", "HEAD")
	fmt.Fprintf(os.Stderr, "soak: building the release to upgrade from: %s (%s)\n", ref, strings.TrimSpace(rev))
	return src, func() { gitIn(context.WithoutCancel(ctx), root, "worktree", "remove", "--force", src) }, nil
}

// gitIn runs git with args in dir and returns its combined output.
func gitIn(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// nextUpgrade is the node a rolling upgrade replaces next among old,
// those of a cluster still on the old release: its leader while the
// leader is old (stopped with SIGTERM, it hands leadership to another
// node, which may be a new one leading old ones: the skew the Raft log
// must survive), else the first old one. "" once none is old.
func nextUpgrade(old []string, leader string) string {
	if slices.Contains(old, leader) {
		return leader
	}
	if len(old) == 0 {
		return ""
	}
	return old[0]
}

// upgrade is the Upgrade fault: each of the site's nodes then each of
// central's (the site runs ahead of central, then both are new), in
// nextUpgrade's order, stopped with SIGTERM, started from the current
// release on its data, and waited for until it has rejoined and caught
// up, before the next. A step that fails is a violation; the upgrade
// goes on with the next node.
func (in *soakInjector) upgrade(ctx context.Context, f soak.Fault) {
	if !in.site.bins.upgrades() {
		in.note(f, "skipped", "no release to upgrade from (-soak-upgrade-from \"\")")
		return
	}
	site := map[string]*soakSiteNode{}
	for _, nd := range in.site.nodes {
		site[nd.id] = nd
	}
	in.upgradePart(ctx, f, "site", slices.Sorted(maps.Keys(site)), func(ctx context.Context) string {
		id, _ := in.site.leader(ctx)
		return id
	}, func(ctx context.Context, id string) error { return in.site.upgradeNode(ctx, site[id]) })
	cen := map[string]*soakCentralNode{}
	for _, nd := range in.cen.nodes {
		cen[nd.id] = nd
	}
	in.upgradePart(ctx, f, "central", slices.Sorted(maps.Keys(cen)), func(ctx context.Context) string {
		if nd := in.cen.leader(ctx); nd != nil {
			return nd.id
		}
		return ""
	}, func(ctx context.Context, id string) error { return in.cen.upgradeNode(ctx, cen[id]) })
}

// upgradePart upgrades the nodes old of one part of the lab one at a
// time, in nextUpgrade's order (leader says which leads now).
func (in *soakInjector) upgradePart(ctx context.Context, f soak.Fault, part string, old []string,
	leader func(context.Context) string, upgrade func(context.Context, string) error) {
	for len(old) > 0 && ctx.Err() == nil {
		id := nextUpgrade(old, leader(ctx))
		old = slices.DeleteFunc(old, func(o string) bool { return o == id })
		began := time.Now()
		if err := upgrade(ctx, id); err != nil {
			in.chk.Violate("upgrade", "%s node %s: %v", part, id, err)
			in.note(f, "failed", part, " ", id, ": ", err)
			continue
		}
		in.note(f, "upgraded", fmt.Sprintf("%s %s in %.1f s", part, id, time.Since(began).Seconds()))
	}
}

// soakCaughtUp bounds the wait for an upgraded node to rejoin its
// cluster and catch up, on a loaded machine.
const soakCaughtUp = 3 * time.Minute

// soakStopWait bounds a node's graceful stop (SIGTERM) in an upgrade.
const soakStopWait = time.Minute

// upgradeNode replaces the site's node nd: SIGTERM, the current
// release's applianced on its data, and a wait until it has caught up
// with the leader; then probeSkew.
func (s *soakSite) upgradeNode(ctx context.Context, nd *soakSiteNode) error {
	p, _ := nd.process()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(soakStopWait):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("applianced did not stop within %v of SIGTERM", soakStopWait)
	}
	nd.mu.Lock()
	nd.bin = s.bins.newApplianced
	nd.mu.Unlock()
	if err := nd.start(); err != nil {
		return err
	}
	if err := s.caughtUp(ctx, nd); err != nil {
		return err
	}
	return s.probeSkew(ctx)
}

// raftView is what a node says of its cluster: its state and the index
// it has applied.
type raftView struct {
	State        string `json:"state"`
	AppliedIndex uint64 `json:"applied_index"`
}

// waitCaughtUp waits until node id, which view asks, is a voter (leader
// or follower) that has applied what its leader had committed
// (leaderCommit) once it answered; exited says why not if it is gone.
func waitCaughtUp(ctx context.Context, id string, exited func() error, view func() (raftView, error), leaderCommit func() (uint64, error)) error {
	var target uint64
	err := pollEvery(ctx, 500*time.Millisecond, soakCaughtUp, func() error {
		if err := exited(); err != nil {
			return err
		}
		st, err := view()
		if err != nil {
			return err
		}
		if st.State != "Leader" && st.State != "Follower" {
			return fmt.Errorf("%s is %s", id, st.State)
		}
		if target == 0 {
			if target, err = leaderCommit(); err != nil {
				return err
			}
		}
		if st.AppliedIndex < target {
			return fmt.Errorf("%s applied %d of %d", id, st.AppliedIndex, target)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s did not rejoin and catch up: %w", id, err)
	}
	return nil
}

// caughtUp is waitCaughtUp of the site's node nd.
func (s *soakSite) caughtUp(ctx context.Context, nd *soakSiteNode) error {
	return waitCaughtUp(ctx, nd.id, func() error {
		if p, _ := nd.process(); p.exited() {
			return fmt.Errorf("%s exited: %s", nd.id, lastLines(p.log, 5))
		}
		return nil
	}, func() (raftView, error) {
		st, err := nd.api.Cluster(ctx)
		return raftView{st.State, st.AppliedIndex}, err
	}, func() (uint64, error) {
		st, err := s.api.Cluster(ctx)
		return st.CommitIndex, err
	})
}

// probeSkew puts the site's subnet again through its leader, whichever
// release it runs (a new leader with old followers proposes what they
// apply: site.Proposer's check of the members' command types), and
// checks that every node, old or new, applies it and still runs.
func (s *soakSite) probeSkew(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.api.Put(cctx, "subnets", stormSubnet.Name, stormSubnet, nil); err != nil {
		return fmt.Errorf("put the subnet again: %w", err)
	}
	for _, nd := range s.nodes {
		if err := s.caughtUp(ctx, nd); err != nil {
			return fmt.Errorf("after the subnet's put: %w", err)
		}
	}
	leader, _ := s.leader(ctx)
	fmt.Fprintf(os.Stderr, "soak: upgrade: the subnet put again through the leader %s; releases %s: every node applied it\n", leader, s.releases())
	return nil
}

// releases says which release each node runs, as "n1=new n2=old".
func (s *soakSite) releases() string {
	var b []string
	for _, nd := range s.nodes {
		nd.mu.Lock()
		rel := "old"
		if nd.bin == s.bins.newApplianced {
			rel = "new"
		}
		nd.mu.Unlock()
		b = append(b, nd.id+"="+rel)
	}
	return strings.Join(b, " ")
}

// upgradeNode replaces central's node nd: SIGTERM, the current
// release's centrald on its data, and a wait until it is a voter that
// has applied what its leader had committed.
func (c *soakCentral) upgradeNode(ctx context.Context, nd *soakCentralNode) error {
	p, _ := nd.process()
	p.Signal(syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, soakStopWait)
	err := p.Wait(wctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		p.Kill()
		return fmt.Errorf("centrald did not stop within %v of SIGTERM", soakStopWait)
	}
	nd.mu.Lock()
	nd.args[0] = c.newBin
	nd.mu.Unlock()
	c.start(nd)
	return waitCaughtUp(ctx, nd.id, func() error {
		if p, _ := nd.process(); !p.Running() {
			return fmt.Errorf("%s exited: %v", nd.id, p.Err())
		}
		return nil
	}, func() (st raftView, err error) {
		return st, nd.api.do(ctx, "GET", "/v1/cluster", nil, &st)
	}, func() (uint64, error) {
		ld := c.leader(ctx)
		if ld == nil {
			return 0, errors.New("no central node says it leads")
		}
		var st struct {
			CommitIndex uint64 `json:"commit_index"`
		}
		return st.CommitIndex, ld.api.do(ctx, "GET", "/v1/cluster", nil, &st)
	})
}
