package app

import (
	"fmt"

	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/raftnode"
)

// checkDataDir refuses a data directory whose store.db, Raft log and
// snapshots do not agree, or one of whose files is missing, empty or
// damaged (raftnode.CheckDataDir). Run calls it before anything opens a
// file for writing, so a refused start changes nothing, and the error
// says how to recover (README: Data directories).
func checkDataDir(cfg *config.Config) error {
	return raftnode.CheckDataDir(cfg.RaftDir(), cfg.StorePath(), store.ReadAppliedIndex, recovery(cfg))
}

// recovery restores a node from the other members of its site, or a
// single-node site from a copy: never a fresh start in place.
func recovery(cfg *config.Config) string {
	return fmt.Sprintf(`applianced changed nothing in %[1]s. To recover node %[2]s:
  - on a site with other members, restore it from them. Move its data directory aside:
        mv %[1]s %[1]s.refused
    remove it from the cluster through the leader (outpost -server <API URL of a member> cluster status names it),
    with an admin token of the site (the old directory may hold one):
        outpost -server <API URL of the leader> -token-file %[1]s.refused/admin.token cluster remove %[2]s
    and start it again with its other flags as before, joining a member:
        applianced -id %[2]s -data-dir %[1]s -join <API URL of a member> -join-token-file %[1]s.refused/admin.token
  - on a single-node site, move %[1]s aside the same way, put back a copy of the data directory made
    while applianced was stopped, and start applianced again.`, cfg.DataDir, cfg.NodeID)
}
