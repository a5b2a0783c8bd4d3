package artifacts

import (
	"context"
	"errors"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/artifact"
)

// How often the leader reports a pull: at each tenth of it, or after
// progressEvery without one; a failure once per failureEvery unless its
// message changes. Events are few: a pull of any size makes at most a
// dozen.
const (
	progressEvery = 30 * time.Second
	failureEvery  = 5 * time.Minute
	reportTimeout = 30 * time.Second
)

// onProgress reports the progress of a pull from past the site, on the
// leader, throttled.
func (n *Node) onProgress(d artifact.Digest, src artifact.Source, held, size int64) {
	if !src.WAN {
		return
	}
	pct := -1
	if size > 0 {
		pct = int(min(held*100/size, 100))
	}
	now := time.Now()
	n.mu.Lock()
	last, ok := n.progress[d]
	due := !ok || pct/10 > last.percent/10 || now.Sub(last.at) >= progressEvery
	if due {
		n.progress[d] = reported{percent: pct, at: now}
	}
	n.mu.Unlock()
	if due && pct < 100 {
		n.send(site.ArtifactReport{Node: n.cfg.ID, SHA256: string(d), Kind: site.ArtifactPulling, Source: src.Name, Held: held, Size: max(size, 0)})
	}
}

// failed reports a pull from past the site that failed.
func (n *Node) failed(ctx context.Context, d artifact.Digest, src artifact.Source, err error) {
	if !src.WAN || ctx.Err() != nil {
		return
	}
	if n.due(d, err.Error()) {
		n.send(site.ArtifactReport{Node: n.cfg.ID, SHA256: string(d), Kind: site.ArtifactFailed, Source: src.Name, Message: err.Error()})
	}
}

// corrupt reports a transfer thrown away because its bytes did not hash
// to their digest, from whichever source (a file of the artifact
// directory whose sha256 is wrong is thrown away at each try).
func (n *Node) corrupt(ctx context.Context, err *artifact.CorruptError) {
	if n.due(err.Want, err.Error()) {
		n.send(site.ArtifactReport{Node: n.cfg.ID, SHA256: string(err.Want), Kind: site.ArtifactCorrupt, Source: err.Source,
			Held: err.Size, Message: err.Error()})
	}
}

// due reports whether a failure of d saying msg is to be reported: once
// per failureEvery unless the message changes. The next try's progress
// is reported afresh.
func (n *Node) due(d artifact.Digest, msg string) bool {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.progress, d)
	last, ok := n.failures[d]
	if ok && last.message == msg && now.Sub(last.at) < failureEvery {
		return false
	}
	n.failures[d] = reported{message: msg, at: now}
	return true
}

// send queues a report for the reporter; a report that finds the queue
// full is dropped (they are notes, and the next one says as much).
func (n *Node) send(r site.ArtifactReport) {
	select {
	case n.reports <- r:
	default:
		n.log.Warn("artifacts: too many reports queued: one dropped", "sha256", r.SHA256, "kind", r.Kind)
	}
}

// report proposes the queued reports, one at a time, so that a slow
// commit never holds up a transfer.
func (n *Node) report(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-n.reports:
			rctx, cancel := context.WithTimeout(ctx, reportTimeout)
			err := n.cfg.Site.ReportArtifact(rctx, r)
			cancel()
			if err != nil && !errors.Is(err, context.Canceled) {
				n.log.Warn("artifacts: report not recorded", "sha256", r.SHA256, "kind", r.Kind, "err", err)
			}
		}
	}
}
