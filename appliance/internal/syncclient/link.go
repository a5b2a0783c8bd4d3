package syncclient

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// ReportEvery is how often, at most, the leader records the link when
// only the time of the last exchange (or the reason it is still down)
// has changed: a command per heartbeat would fill the Raft log with news
// of nothing (site/apply_link.go). A change of the link (up, down,
// another leader, another central) is recorded at once.
var ReportEvery = time.Minute

// link is the link as this node's client knows it, during its current
// leadership; known is false until the first session of that leadership
// connected or failed.
type link struct {
	known     bool
	connected bool
	since     time.Time
	err       string
	central   string
}

// linkState holds the link and wakes the reporter when it changes.
type linkState struct {
	mu      sync.Mutex
	cur     link
	changed chan struct{}
}

func newLinkState() *linkState { return &linkState{changed: make(chan struct{})} }

// set records the link's state; since moves only when the link comes up
// or goes down. A zero state (forget) makes it unknown again.
func (s *linkState) set(l link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.known && s.cur.known && s.cur.connected == l.connected && s.cur.central == l.central {
		l.since = s.cur.since
	}
	s.cur = l
	close(s.changed)
	s.changed = make(chan struct{})
}

// get returns the link and a channel closed at its next change.
func (s *linkState) get() (link, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.changed
}

// sessionEnded records how a session to central ended, unless it ended
// because this node stopped leading or is stopping: it then knows
// nothing of the link, and the next leader reports its own.
func (c *Client) sessionEnded(central string, err error) {
	if err == nil || errors.Is(err, errNotLeader) || errors.Is(err, context.Canceled) {
		return
	}
	c.link.set(link{known: true, since: time.Now(), err: err.Error(), central: central})
}

// report keeps the store's record of the link in step with what this
// node's client knows, while it leads: at once when the link changes or
// the record says otherwise (another leader's late report), and at most
// every ReportEvery for the time of the last exchange. It returns when
// ctx ends.
func (c *Client) report(ctx context.Context) {
	for {
		l, changed := c.link.get()
		stored := c.cfg.Store.Changed()
		if l.known && c.cfg.Node.IsReadyLeader() {
			if err := c.reportOnce(ctx, l); err != nil && ctx.Err() == nil {
				c.log.Warn("record the link to central", "err", err)
				if !sleep(ctx, c.cfg.MinBackoff) {
					return
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-stored:
		case <-time.After(ReportEvery):
		}
	}
}

// reportOnce records l if the store's record differs from it.
func (c *Client) reportOnce(ctx context.Context, l link) error {
	var rec *store.Link
	if err := c.cfg.Store.View(func(tx *store.Tx) (err error) { rec, err = tx.Link(); return err }); err != nil {
		return err
	}
	r := site.LinkReport{Node: c.cfg.Node.ID(), Connected: l.connected, Since: l.since, LastError: l.err,
		Central: l.central, LastSync: c.LastSync()}
	if !needsReport(rec, r, time.Now()) {
		return nil
	}
	return c.cfg.Node.RecordLink(ctx, r)
}

// needsReport reports whether the record rec should be replaced by r at
// time now: at once if it is another node's or says another thing of
// the link, after ReportEvery if only the last exchange or the reason
// the link is down moved on.
func needsReport(rec *store.Link, r site.LinkReport, now time.Time) bool {
	switch {
	case rec == nil, rec.Node != r.Node, rec.Connected != r.Connected, rec.Central != r.Central, !rec.Since.Equal(r.Since):
		return true
	case now.Sub(rec.UpdatedAt) < ReportEvery:
		return false
	}
	return rec.LastError != r.LastError || r.LastSync.After(rec.LastSync)
}
