package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/seal"
)

// openCluster opens the node's membership of the site's cluster with its
// identity (its key pair in the data directory, made at the first start)
// and, if it has the site key, the site's CA.
func openCluster(cfg *config.Config, db *store.DB, key *seal.Key, log *slog.Logger) (*cluster.Node, error) {
	ident, err := pki.LoadIdentity(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	var ca *pki.Authority
	if key != nil {
		if ca, err = cluster.SiteCA(key); err != nil {
			return nil, err
		}
	}
	return cluster.Open(cluster.Config{
		ID:            cfg.NodeID,
		Dir:           cfg.RaftDir(),
		BindAddr:      cfg.RaftAddr,
		AdvertiseAddr: cfg.RaftAdvertise,
		APIURL:        cfg.APIURL,
		Bootstrap:     cfg.Join == "",
		Timing:        raftTiming(cfg.Raft),
		Probe:         raftProbe(cfg.Raft),
		Identity:      ident,
		CA:            ca,
		Log:           log,
	}, db)
}

// joinSite joins the cluster at cfg.Join through its API (see
// cluster.Node.JoinWith and api.JoinRequest). have is the site key the
// node already holds (a join that was cut off), which the cluster's must
// match. It returns the site key.
func joinSite(ctx context.Context, cfg *config.Config, node *cluster.Node, have *seal.Key, log *slog.Logger) (*seal.Key, error) {
	token, err := joinToken(cfg)
	if err != nil {
		return nil, err
	}
	c, err := client.NewPinned(cfg.Join, token, client.Pin{Fingerprint: cfg.JoinCAFingerprint})
	if err != nil {
		return nil, err
	}
	key := have
	ask := func(ctx context.Context, m store.Member, pub []byte, voter bool) ([]byte, []store.Member, error) {
		req := api.JoinRequest{ID: m.ID, RaftAddr: m.RaftAddr, APIURL: m.APIAddr, PublicKey: pub, Voter: voter}
		resp, err := askJoin(ctx, c, req, log)
		if err == nil && !voter {
			key, err = joinedKey(cfg, token, resp.SealedSiteKey, have)
		}
		return resp.Certificate, resp.Members, err
	}
	if err := node.JoinWith(ctx, ask, func() (*pki.Authority, error) { return joinedCA(cfg, key) }); err != nil {
		return nil, fmt.Errorf("join %s: %w", cfg.Join, err)
	}
	log.Info("joined cluster", "via", cfg.Join)
	return key, nil
}

// joinedCA is the site's CA, derived from the site key a join handed
// over, once the site's API CA that key derives is checked to be the
// one join_ca_fingerprint pins.
func joinedCA(cfg *config.Config, key *seal.Key) (*pki.Authority, error) {
	if cfg.JoinCAFingerprint != "" {
		api, err := cluster.SiteAPICA(key)
		if err != nil {
			return nil, err
		}
		pinned, _ := pki.ParseFingerprint(cfg.JoinCAFingerprint) // Validate checked it
		if api.Fingerprint() != pki.FormatFingerprint(pinned) {
			return nil, fmt.Errorf("join %s: the site key handed over derives the API CA %s, not the pinned %s", cfg.Join, api.Fingerprint(), pki.FormatFingerprint(pinned))
		}
	}
	return cluster.SiteCA(key)
}

// askJoin sends a join request, retrying until the cluster answers; a
// refusal (a wrong token, a bad request) ends it, and so does a member
// whose API CA is not the one pinned (join_ca_fingerprint).
func askJoin(ctx context.Context, c *client.Client, req api.JoinRequest, log *slog.Logger) (api.JoinResponse, error) {
	for attempt := 1; ; attempt++ {
		resp, err := c.Join(ctx, req)
		if err == nil {
			return resp, nil
		}
		var ae *client.Error
		if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusBadRequest) ||
			errors.Is(err, pki.ErrPinMismatch) {
			return resp, fmt.Errorf("join: %w", err)
		}
		log.Warn("join failed; retrying", "attempt", attempt, "voter", req.Voter, "err", err)
		select {
		case <-ctx.Done():
			return resp, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// joinedKey opens the site key a join handed over, and saves it, or
// checks that it is the one the node has.
func joinedKey(cfg *config.Config, token string, sealed []byte, have *seal.Key) (*seal.Key, error) {
	raw, err := api.JoinKey(token).Open(sealed, "site key for "+cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", cfg.Join, err)
	}
	key, err := seal.NewKey(raw)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", cfg.Join, err)
	}
	if have != nil {
		if !bytes.Equal(have.Raw(), raw) {
			return nil, fmt.Errorf("join %s: the site key in %s is not this cluster's", cfg.Join, cfg.SiteKeyPath())
		}
		return have, nil
	}
	return key, key.Save(cfg.SiteKeyPath())
}

func joinToken(cfg *config.Config) (string, error) {
	if t := os.Getenv("OUTPOST_JOIN_TOKEN"); t != "" {
		return t, nil
	}
	if cfg.JoinTokenFile == "" {
		return "", errors.New("join: set join_token_file or OUTPOST_JOIN_TOKEN to an admin token of the cluster")
	}
	raw, err := os.ReadFile(cfg.JoinTokenFile)
	if err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// raftCollectors are the node's Raft metrics: the leader changes it has
// seen (an idle site should show none) and its term.
func raftCollectors(node *cluster.Node) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "outpost_raft_leader_changes_total",
			Help: "Times this node saw the site's leadership move, to another node or a later term, since it started.",
		}, func() float64 { return float64(node.LeaderChanges()) }),
		probeCollector{node},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "outpost_store_write_errors_total",
			Help: "Writes of this node's Raft log that failed (a full disk) since it started: while they fail the node can neither commit nor lead.",
		}, func() float64 { return float64(node.WriteErrors()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_store_write_failing",
			Help: "1 while this node's last write of its Raft log failed (GET /v1/cluster's write_problem says why), else 0.",
		}, func() float64 {
			if node.WriteProblem() != "" {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outpost_raft_term",
			Help: "This node's current Raft term.",
		}, func() float64 { return float64(node.Term()) }),
	}
}

// raftTiming is the node's Raft timing: every timeout the configured
// heartbeat timeout (raftnode.LANTiming's shape).
func raftTiming(c config.RaftConfig) raftnode.Timing {
	d := time.Duration(c.HeartbeatTimeout)
	return raftnode.Timing{Heartbeat: d, Election: d, LeaderLease: d}
}

// raftProbe is the node's probe of a silent leader; a zero leader_probe
// disables it.
func raftProbe(c config.RaftConfig) raftnode.Probe {
	if c.LeaderProbe == 0 {
		return raftnode.Probe{After: -1}
	}
	return raftnode.Probe{After: time.Duration(c.LeaderProbe), Timeout: time.Duration(c.LeaderProbeTimeout)}
}

// probeDesc describes outpost_raft_leader_probe_total.
var probeDesc = prometheus.NewDesc("outpost_raft_leader_probe_total",
	"This node's probes of the Raft port of a leader it had not heard from for raft.leader_probe, by verdict: alive (accepted), refused (nothing listens: an election followed), timeout or unreachable.",
	[]string{"verdict"}, nil)

// probeCollector collects the node's probe counts by verdict.
type probeCollector struct{ node *cluster.Node }

func (c probeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- probeDesc }

func (c probeCollector) Collect(ch chan<- prometheus.Metric) {
	for v, n := range c.node.LeaderProbes() {
		ch <- prometheus.MustNewConstMetric(probeDesc, prometheus.CounterValue, float64(n), v)
	}
}
