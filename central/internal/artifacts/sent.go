package artifacts

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
)

// Sent counts bytes of artifact d that this node wrote to site: in the
// metric at once, and in the store (every node's bytes, summed) with the
// next flush.
func (n *Node) Sent(site string, d artifact.Digest, bytes int64) {
	if bytes <= 0 {
		return
	}
	n.m.sent.WithLabelValues(site).Add(float64(bytes))
	n.mu.Lock()
	n.sent[sentKey{site, d}] += bytes
	n.mu.Unlock()
	select {
	case n.sentWake <- struct{}{}:
	default:
	}
}

// sentRetry spaces the flushes that failed (no leader).
const sentRetry = time.Second

// sendCounts flushes the counts of bytes sent as they come, until ctx
// ends. Counts not yet flushed when it ends are lost to the store (the
// metric has them).
func (n *Node) sendCounts(ctx context.Context) {
	retry := time.NewTimer(sentRetry)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.sentWake:
		case <-retry.C:
		}
		if err := n.flushSent(ctx); err != nil {
			if ctx.Err() == nil {
				n.log.Debug("artifacts: counts of bytes sent not stored yet", "err", err)
			}
			retry.Reset(sentRetry)
		}
	}
}

// flushSent stores the counts gathered since the last flush, through the
// leader. A failure puts them back for the next; a refusal (a site that
// does not exist) drops them.
func (n *Node) flushSent(ctx context.Context) error {
	n.mu.Lock()
	counts := make([]store.SentCount, 0, len(n.sent))
	for k, b := range n.sent {
		counts = append(counts, store.SentCount{Site: k.site, Digest: k.digest, Bytes: b})
	}
	clear(n.sent)
	n.mu.Unlock()
	if len(counts) == 0 {
		return nil
	}
	slices.SortFunc(counts, func(a, b store.SentCount) int {
		return strings.Compare(a.Site+string(a.Digest), b.Site+string(b.Digest))
	})
	var err error
	if n.leads() {
		err = n.db.CountArtifactSent(counts)
	} else {
		err = n.callLeader(ctx, "POST", peerArtifactPath+"sent", counts, nil)
	}
	if _, refused := errs.AsError(err); refused {
		n.log.Warn("artifacts: counts of bytes sent refused", "err", err)
		return nil
	}
	if err != nil {
		n.mu.Lock()
		for _, c := range counts {
			n.sent[sentKey{c.Site, c.Digest}] += c.Bytes
		}
		n.mu.Unlock()
	}
	return err
}
