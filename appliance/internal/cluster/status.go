package cluster

import (
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// unhealthyContact is how long a follower may go without hearing from a
// leader before it reports itself unhealthy.
const unhealthyContact = 5 * time.Second

// Status reports this node's view of the cluster.
func (n *Node) Status() site.Status {
	rs := n.raft.Status()
	st := site.Status{
		ID:           rs.ID,
		State:        rs.State,
		LeaderID:     rs.LeaderID,
		LeaderAddr:   rs.LeaderAddr,
		Term:         rs.Term,
		AppliedIndex: rs.AppliedIndex,
		CommitIndex:  rs.CommitIndex,
		LastIndex:    rs.LastIndex,
		WriteProblem: rs.WriteProblem,
	}
	if !rs.LastContact.IsZero() {
		st.LastContact = time.Since(rs.LastContact).Round(time.Millisecond).String()
	}
	members := map[string]store.Member{}
	_ = n.db.View(func(tx *store.Tx) error {
		ms, _ := store.List[store.Member](tx)
		for _, m := range ms {
			members[m.ID] = *m
		}
		return nil
	})
	st.CA = n.caStatus()
	if servers, err := n.raft.Servers(); err == nil {
		for _, s := range servers {
			suffrage := "Nonvoter"
			if s.Voter {
				suffrage = "Voter"
			}
			st.Members = append(st.Members, site.MemberStatus{
				ID: s.ID, RaftAddr: s.Addr, APIAddr: members[s.ID].APIAddr, Suffrage: suffrage,
				Leader: s.ID == rs.LeaderID, Fingerprint: members[s.ID].Fingerprint,
			})
			if m, ok := members[s.ID]; ok {
				last := &st.Members[len(st.Members)-1]
				last.CAGeneration = m.Generation()
				last.Renewed = last.CAGeneration == st.CA.Generation
			}
		}
	}
	st.Healthy, st.Problem = health(st, rs.LastContact)
	return st
}

func health(st site.Status, lastContact time.Time) (bool, string) {
	switch {
	case st.WriteProblem != "":
		return false, "cannot write its raft log: " + st.WriteProblem
	case st.LeaderID == "":
		return false, "no leader"
	case st.State == "Leader":
		return true, ""
	case lastContact.IsZero() || time.Since(lastContact) > unhealthyContact:
		return false, "no contact with the leader for over " + unhealthyContact.String()
	case st.CommitIndex > st.AppliedIndex+10000:
		return false, "applying is far behind the log"
	}
	return true, ""
}
