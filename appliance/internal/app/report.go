package app

import (
	"runtime/debug"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/syncproto"
)

// selfReport returns what the site reports of itself to central through
// this node while it leads (syncclient.Config.Report): its release, its
// cluster's health as status (the node's view, which is the leader's)
// says, and the console's URL, consoleURL (the API's: the console
// answers every path but /v1/).
func selfReport(status func() site.Status, consoleURL string) func() *syncproto.Report {
	release := releaseVersion()
	return func() *syncproto.Report {
		st := status()
		r := &syncproto.Report{Appliance: release, Leader: st.LeaderID, Console: consoleURL, Nodes: len(st.Members)}
		for _, m := range st.Members {
			if m.Suffrage == "Voter" {
				r.Voters++
			}
		}
		if st.Healthy {
			r.Healthy = r.Nodes
		} else if st.Problem != "" {
			r.Problems = append(r.Problems, st.Problem)
		}
		return r
	}
}

// releaseVersion is the release this binary was built from: its module
// version, or its VCS revision (with "+dirty" for a modified tree), or
// "dev".
func releaseVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}
