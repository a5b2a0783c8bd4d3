package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/outposthq/outpost/central/internal/api"
	"github.com/outposthq/outpost/central/internal/cluster"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
)

// headerForwarded marks a request a follower sent on to the leader: a
// node that gets one and does not lead answers 503 rather than send it
// around again (two nodes with stale views of who leads).
const headerForwarded = "X-Outpost-Central-Forwarded"

// toLeader serves a request here if this node leads, and otherwise sends
// it to the leader: every node takes API calls and site connections (the
// proxy carries websockets and event streams too), and only the leader
// acts on them. They travel over the leader's Raft port, mutual TLS
// between members (cluster.Config.Internal), so the tokens they carry
// never cross between nodes in the clear. /healthz and GET /v1/cluster
// are answered by every node for itself, as are the uploads and
// downloads of artifacts, /metrics, and anything under /internal/
// (api.Local).
func toLeader(node *cluster.Node, next http.Handler, log *slog.Logger) http.Handler {
	transport := node.HTTPClient().Transport
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := r.URL.Path == "/healthz" || (r.Method == http.MethodGet && (r.URL.Path == "/v1/cluster" || r.URL.Path == httpapi.CAPath)) ||
			api.Local(r)
		if local || node.IsLeader() {
			next.ServeHTTP(w, r)
			return
		}
		leader := node.LeaderInternal()
		if leader == "" || r.Header.Get(headerForwarded) != "" {
			unavailable(w, "central has no leader at the moment (an election is under way); retry")
			return
		}
		target, err := url.Parse(leader)
		if err != nil {
			unavailable(w, "the leader's address does not parse")
			return
		}
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
				pr.Out.Header.Set(headerForwarded, node.ID())
			},
			Transport:     transport,
			FlushInterval: -1, // event streams flow as they are written
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				log.Warn("cluster: sending a request to the leader", "leader", leader, "path", r.URL.Path, "err", err)
				unavailable(w, "the leader did not answer; retry")
			},
		}
		proxy.ServeHTTP(w, r)
	})
}

func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "unavailable", "message": msg}})
}

// peerRoots trusts the system's roots and the certificates in this
// node's own certificate file (peers usually share a CA, or a
// certificate).
func peerRoots(certFile string, log *slog.Logger) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if pem, err := os.ReadFile(certFile); err == nil {
		pool.AppendCertsFromPEM(pem)
	} else {
		log.Warn("cluster: reading the certificate to trust peers", "err", err)
	}
	return pool
}

// joinClient is a new node's client of the cluster it joins.
type joinClient struct {
	url, token, apiURL string
	http               *http.Client
	// members are those the cluster named when it admitted the node
	// (admit), nil before.
	members []*store.Member
}

func newJoinClient(cfg *config.Config, apiURL string) (*joinClient, error) {
	token := os.Getenv("OUTPOST_CENTRAL_JOIN_TOKEN")
	if token == "" {
		if cfg.JoinTokenFile == "" {
			return nil, errors.New("join: set join_token_file or OUTPOST_CENTRAL_JOIN_TOKEN to an admin token of the cluster")
		}
		raw, err := os.ReadFile(cfg.JoinTokenFile)
		if err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
		token = strings.TrimSpace(string(raw))
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	switch {
	case cfg.JoinCAFingerprint != "":
		tc, err := pki.PinnedTLS(cfg.JoinCAFingerprint, nil)
		if err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
		transport.TLSClientConfig = tc
	case cfg.TLSCert != "":
		transport.TLSClientConfig = &tls.Config{RootCAs: peerRoots(cfg.TLSCert, slog.New(slog.DiscardHandler))}
	}
	return &joinClient{url: strings.TrimRight(cfg.Join, "/"), token: token, apiURL: apiURL,
		http: &http.Client{Timeout: time.Minute, Transport: transport}}, nil
}

// admit gets central's key from the cluster, and saves it if the node has
// none, and the node's certificate for its key pair (made here at its
// first start), retrying until the cluster answers; a refusal (a wrong
// token) ends it.
func (c *joinClient) admit(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	ident, err := pki.LoadIdentity(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return err
	}
	req := api.JoinKeyRequest{ID: cfg.NodeID, PublicKey: ident.PublicKeyDER(), RaftAddr: advertisedRaft(cfg), APIURL: c.apiURL}
	var resp api.JoinKeyResponse
	if err := c.retry(ctx, "get the key", log, "/v1/cluster/key", req, &resp); err != nil {
		return err
	}
	if _, err := os.Stat(store.KeyFile(cfg.StorePath())); errors.Is(err, os.ErrNotExist) {
		if err := store.SaveJoinKey(cfg.StorePath(), resp.SealedKey, c.token, cfg.NodeID); err != nil {
			return fmt.Errorf("join %s: %w", c.url, err)
		}
	}
	if err := ident.SetCertificate(resp.Certificate); err != nil {
		return fmt.Errorf("join %s: %w", c.url, err)
	}
	c.members = resp.Members
	return nil
}

// openCluster opens the node's membership of central's cluster with its
// identity. A joining node whose store holds no record of itself yet (its
// first start, or a join cut short before it caught up) is admitted (its
// certificate, and the members it trusts while its store has no record
// of them); internal is what it serves the others when it leads, peer
// what it serves them for itself.
func openCluster(ctx context.Context, cfg *config.Config, db *store.DB, joiner *joinClient, internal, peer http.Handler, apiURL string, log *slog.Logger) (*cluster.Node, error) {
	if joiner != nil && joiner.members == nil {
		if _, err := db.Member(cfg.NodeID); errors.Is(err, errs.ErrNotFound) {
			if err := joiner.admit(ctx, cfg, log); err != nil {
				return nil, err
			}
		}
	}
	ident, err := pki.LoadIdentity(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	node, err := cluster.Open(cluster.Config{Config: raftnode.Config{
		ID: cfg.NodeID, Dir: cfg.RaftDir(), BindAddr: cfg.RaftAddr, AdvertiseAddr: cfg.RaftAdvertise,
		Bootstrap: cfg.Join == "", Log: log,
	}, APIURL: apiURL, Identity: ident, Internal: internal, Peer: peer}, db)
	if err != nil {
		return nil, err
	}
	if joiner != nil && joiner.members != nil {
		node.SetJoinTrust(joiner.members)
	}
	return node, nil
}

// join asks the cluster to make m a voter, retrying until it answers.
func (c *joinClient) join(ctx context.Context, m *store.Member, log *slog.Logger) error {
	if err := c.retry(ctx, "join", log, "/v1/cluster/members", m, nil); err != nil {
		return err
	}
	log.Info("joined the central cluster", "via", c.url, "id", m.ID)
	return nil
}

func (c *joinClient) retry(ctx context.Context, what string, log *slog.Logger, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := c.post(ctx, path, body, resp)
		var refused *refusedError
		if err == nil || errors.As(err, &refused) || errors.Is(err, pki.ErrPinMismatch) {
			if err != nil {
				return fmt.Errorf("join %s: %s: %w", c.url, what, err)
			}
			return nil
		}
		log.Warn("join: retrying", "what", what, "via", c.url, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// refusedError is an answer that retrying will not change.
type refusedError struct {
	status int
	body   string
}

func (e *refusedError) Error() string { return fmt.Sprintf("refused (%d): %s", e.status, e.body) }

func (c *joinClient) post(ctx context.Context, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusOK:
		if out == nil {
			return nil
		}
		return json.Unmarshal(raw, out)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusConflict:
		return &refusedError{status: resp.StatusCode, body: strings.TrimSpace(string(raw))}
	}
	return fmt.Errorf("%s: %d: %s", path, resp.StatusCode, strings.TrimSpace(string(raw)))
}
