package replica

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Status describes the cluster as this node sees it.
type Status struct {
	ID           string         `json:"id"`
	State        string         `json:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID     string         `json:"leader_id,omitempty"`
	LeaderAddr   string         `json:"leader_addr,omitempty"`
	Term         uint64         `json:"term"`
	AppliedIndex uint64         `json:"applied_index"`
	CommitIndex  uint64         `json:"commit_index"`
	LastIndex    uint64         `json:"last_log_index"`
	LastContact  string         `json:"last_contact,omitempty"`
	Healthy      bool           `json:"healthy"`
	Problem      string         `json:"problem,omitempty"`
	Members      []MemberStatus `json:"members"`
}

// MemberStatus is one server of the Raft configuration.
type MemberStatus struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// unhealthyContact is how long a follower may go without hearing from a
// leader before it reports itself unhealthy.
const unhealthyContact = 5 * time.Second

// Status reports this node's view of the cluster.
func (n *Node) Status() Status {
	leaderAddr, leaderID := n.raft.LeaderWithID()
	st := Status{
		ID:           n.cfg.ID,
		State:        n.raft.State().String(),
		LeaderID:     string(leaderID),
		LeaderAddr:   string(leaderAddr),
		AppliedIndex: n.db.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		LastIndex:    n.raft.LastIndex(),
	}
	stats := n.raft.Stats()
	st.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	if n.raft.State() != raft.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			st.LastContact = time.Since(lc).Round(time.Millisecond).String()
		}
	}
	members := map[string]store.Member{}
	_ = n.db.View(func(tx *store.Tx) error {
		ms, _ := store.List[store.Member](tx)
		for _, m := range ms {
			members[m.ID] = *m
		}
		return nil
	})
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Members = append(st.Members, MemberStatus{
				ID:       string(s.ID),
				RaftAddr: string(s.Address),
				APIAddr:  members[string(s.ID)].APIAddr,
				Suffrage: s.Suffrage.String(),
				Leader:   s.ID == leaderID,
			})
		}
	}
	st.Healthy, st.Problem = n.health(st)
	return st
}

func (n *Node) health(st Status) (bool, string) {
	switch {
	case st.LeaderID == "":
		return false, "no leader"
	case st.State == raft.Leader.String():
		return true, ""
	case n.raft.LastContact().IsZero() || time.Since(n.raft.LastContact()) > unhealthyContact:
		return false, "no contact with the leader for over " + unhealthyContact.String()
	case st.CommitIndex > st.AppliedIndex+10000:
		return false, "applying is far behind the log"
	}
	return true, ""
}
