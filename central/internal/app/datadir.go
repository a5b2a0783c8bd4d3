package app

import (
	"fmt"

	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/raftnode"
)

// checkDataDir is the appliance's check for central (raftnode.CheckDataDir
// over central.db and raft/), before Run opens either, so that a refused
// start changes nothing. A single central has no Raft directory: its
// store is checked alone. The recovery is in central/README.md.
func checkDataDir(cfg *config.Config) error {
	return raftnode.CheckDataDir(cfg.RaftDir(), cfg.StorePath(), store.ReadAppliedIndex, recovery(cfg))
}

// recovery is how the operator restores this node: from the other
// members, or a single central from a copy; never afresh in place.
func recovery(cfg *config.Config) string {
	backup := fmt.Sprintf(`move %[1]s aside (mv %[1]s %[1]s.refused), put back a copy of the data directory made
    while centrald was stopped, and start centrald again.`, cfg.DataDir)
	if !cfg.Replicated() {
		return fmt.Sprintf("centrald changed nothing in %s. To recover, %s", cfg.DataDir, backup)
	}
	return fmt.Sprintf(`centrald changed nothing in %[1]s. To recover node %[2]s:
  - with other members, restore it from them. Move its data directory aside:
        mv %[1]s %[1]s.refused
    remove it from the cluster through a member, with an admin token (the old directory may hold one):
        curl -X DELETE -H "Authorization: Bearer $(cat %[1]s.refused/admin.token)" <API URL of a member>/v1/cluster/members/%[2]s
    and start it again with its other flags as before, joining a member:
        centrald -node-id %[2]s -data-dir %[1]s -join <API URL of a member> -join-token-file %[1]s.refused/admin.token
  - the last member: %[3]s`, cfg.DataDir, cfg.NodeID, backup)
}
