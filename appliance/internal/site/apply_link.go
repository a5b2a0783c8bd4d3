package site

import (
	"net/url"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// The link to central. Only the leader runs the sync client, so only it
// knows whether central is reachable; it records what it knows in the
// store (RecordLink) so that every node's console and API show the
// site's link, naming the leader that reported it. It reports changes,
// not every exchange: when the link comes up or goes down, when a new
// leader's client first connects or fails to, and, at most once a
// minute, the time of the last exchange or a new reason the link is
// still down. A command per heartbeat would grow the Raft log and every
// node's disk writes by a steady trickle that says nothing new; a
// minute's resolution is what a person reading "last sync" needs.

// applyRecordLink records a report of the link. It refuses, changing
// nothing, a report that does not validate (store.Link.Validate), one
// whose central URL carries credentials, and one older than the
// recorded report of the same node (a retry that arrived late). A report
// of another node replaces the record whatever its time: it comes from a
// newer leader, whose clock may lag the old one's.
func applyRecordLink(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req LinkReport
	command.MustDecode(payload, &req, index)
	l := &store.Link{Node: req.Node, Connected: req.Connected, Since: req.Since, LastSync: req.LastSync,
		LastError: req.LastError, Central: req.Central}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if err := checkCentralURL(req.Central); err != nil {
		return nil, err
	}
	old, err := tx.Link()
	if err != nil {
		return nil, err
	}
	if old != nil && old.Node == req.Node && req.Time.Before(old.UpdatedAt) {
		return nil, errs.Conflict("a report of the link by %s at %s is older than the recorded one of %s",
			req.Node, req.Time.UTC().Format("2006-01-02T15:04:05.000Z"), old.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if err := tx.UnsafePut(l, store.Write{Index: index, Time: req.Time, By: req.By}); err != nil {
		return nil, err
	}
	return l, nil
}

// checkCentralURL refuses a central URL that does not parse or that
// carries credentials or a query: the record is shown to every viewer.
func checkCentralURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errs.Invalid("central", "is required")
	case err != nil || u.Host == "":
		return errs.Invalid("central", "%q is not a URL", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errs.Invalid("central", "must carry no credentials, query or fragment")
	}
	return nil
}
