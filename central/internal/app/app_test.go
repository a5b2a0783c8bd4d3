package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/syncproto"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "central"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

type running struct {
	url  string
	out  *centraltest.Buffer
	done chan error // Run's result
	stop func() error
}

// waitTimeout bounds every wait for central to print a line: generous,
// since a loaded CI machine is slow, and waits end as soon as the line is
// there.
const waitTimeout = time.Minute

// waitOut polls central's output until re matches it and returns the
// submatches; it fails the test if Run returns or the line does not come.
func waitOut(t *testing.T, out *centraltest.Buffer, done <-chan error, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before printing %q; it printed:\n%s", err, re, out)
		case <-deadline:
			t.Fatalf("central did not print %q in %v; it printed:\n%s", re, waitTimeout, out)
		case <-tick.C:
		}
	}
}

func start(t *testing.T, cfg *config.Config, logs *centraltest.Buffer) *running {
	t.Helper()
	out := &centraltest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := logs.Logger()
	go func() { done <- Run(ctx, cfg, log, out) }()
	m := waitOut(t, out, done, regexp.MustCompile(`API at (https?://\S+),`))
	stopped := false
	return &running{url: m[1], out: out, done: done, stop: func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}}
}

// waitOut waits until central prints a line that matches re; see waitOut.
func (r *running) waitOut(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	return waitOut(t, r.out, r.done, re)
}

// waitAdminToken waits until central prints its first admin token, which
// it does after saving it and storing it (it prints where it listens
// before), and returns it.
func (r *running) waitAdminToken(t *testing.T, cfg *config.Config) string {
	t.Helper()
	re := regexp.MustCompile(`admin token \(shown once; also saved to ` + regexp.QuoteMeta(cfg.AdminTokenPath()) + `\):\n  (\S+)\n`)
	return r.waitOut(t, re)[1]
}

// centrald over TLS: the first admin token is printed once and saved
// (0600), never logged; a site created through the API connects over
// wss; a restart keeps the token and the site; shutdown ends sessions
// with "unavailable".
func TestRunTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cfg := config.Default()
	cfg.DataDir, cfg.Addr, cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "data"), "127.0.0.1:0", certFile, keyFile
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	logs := &centraltest.Buffer{}

	r := start(t, cfg, logs)
	defer r.stop()
	printed := r.waitAdminToken(t, cfg)
	raw, err := os.ReadFile(cfg.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(cfg.AdminTokenPath()); fi.Mode().Perm() != 0o600 {
		t.Errorf("admin token file mode %v", fi.Mode().Perm())
	}
	token := strings.TrimSpace(string(raw))
	if token != printed {
		t.Errorf("the token printed (%q) is not the one saved (%q)", printed, token)
	}
	if strings.Count(r.out.String(), token) != 1 {
		t.Errorf("the token is not printed once:\n%s", r.out)
	}
	do := func(method, path, body string, out any) int {
		t.Helper()
		return apiCall(t, client, method, r.url+path, token, body, out)
	}
	var created struct{ Credential string }
	if code := do("POST", "/v1/sites", `{"id":"fra-1"}`, &created); code != http.StatusCreated {
		t.Fatalf("create site: %d", code)
	}
	do("PUT", "/v1/sites/fra-1/orders/o1", `{"action":"power_on","machine_id":"m1"}`, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "wss" + strings.TrimPrefix(r.url, "https") + syncproto.Path
	conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	write := func(m syncproto.Message) {
		frame, _ := syncproto.Encode(m)
		if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
			t.Fatal(err)
		}
	}
	read := func() syncproto.Message {
		_, frame, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := syncproto.Decode(frame)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	write(&syncproto.Hello{Site: "fra-1", Credential: syncproto.Credential(created.Credential), Versions: syncproto.Supported})
	if w, ok := read().(*syncproto.Welcome); !ok || w.NextRevision != 1 {
		t.Fatalf("welcome: %+v", w)
	}
	if d, ok := read().(*syncproto.Desired); !ok || d.Changes[0].Key != "o1" {
		t.Fatalf("desired: %+v", d)
	}
	last := make(chan syncproto.Message, 1)
	go func() { // the site reads on, as a site does
		for {
			_, frame, err := conn.Read(ctx)
			if err != nil {
				close(last)
				return
			}
			if m, err := syncproto.Decode(frame); err == nil {
				if _, ok := m.(*syncproto.Heartbeat); !ok {
					last <- m
				}
			}
		}
	}()
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if e, ok := (<-last).(*syncproto.Error); !ok || e.Code != syncproto.CodeUnavailable {
		t.Errorf("at shutdown the site got %+v, want error unavailable", e)
	}

	r = start(t, cfg, logs)
	defer r.stop()
	r.waitOut(t, regexp.MustCompile(`authenticate with the admin token in `+regexp.QuoteMeta(cfg.AdminTokenPath())))
	if strings.Contains(r.out.String(), token) {
		t.Errorf("after a restart:\n%s", r.out)
	}
	var site struct {
		ID   string
		Sync struct {
			LatestRevision uint64 `json:"latest_revision"`
		}
	}
	if code := do("GET", "/v1/sites/fra-1", "", &site); code != 200 || site.ID != "fra-1" || site.Sync.LatestRevision != 1 {
		t.Errorf("site after restart: %d %+v", code, site)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for what, secret := range map[string]string{"admin token": token, "credential": created.Credential} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the %s is in the log", what)
		}
	}
	if !strings.Contains(logs.String(), "site=fra-1") {
		t.Errorf("the log does not show the session:\n%s", logs)
	}
}

// poll calls cond until it is true (true) or waitTimeout passes (false).
func poll(cond func() bool) bool {
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// nodeConfig is the configuration of node id of a replicated central on
// loopback.
func nodeConfig(t *testing.T, id string) *config.Config {
	c := config.Default()
	c.DataDir, c.Addr, c.RaftAddr, c.NodeID = filepath.Join(t.TempDir(), id), centraltest.FreeAddr(t), centraltest.FreeAddr(t), id
	return c
}

// A node joins a replicated central with an admin token and gets its
// key; a wrong token is refused and changes nothing; a follower sends API
// calls to the leader.
func TestJoin(t *testing.T) {
	logs := &centraltest.Buffer{}
	c1 := nodeConfig(t, "c1")
	r1 := start(t, c1, logs)
	defer r1.stop()
	// The token file is written before the token is stored (through
	// Raft): wait for the line printed after both.
	token := r1.waitAdminToken(t, c1)
	get := func(url, path string, out any) int {
		t.Helper()
		return apiCall(t, http.DefaultClient, "GET", url+path, token, "", out)
	}

	joiner := func(id, tokenFile string) *config.Config {
		c := nodeConfig(t, id)
		c.Join, c.JoinTokenFile = r1.url, tokenFile
		return c
	}
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "bad.token"), filepath.Join(dir, "good.token")
	os.WriteFile(bad, []byte("abcd1234.not-the-token\n"), 0o600)
	os.WriteFile(good, []byte(token+"\n"), 0o600)

	cbad := joiner("c2", bad)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, cbad, slog.New(slog.NewTextHandler(logs, nil)), &centraltest.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("joining with a wrong token: %v, want refused with 401", err)
	}
	if _, err := os.Stat(filepath.Join(cbad.DataDir, "central.key")); err == nil {
		t.Error("a refused join saved a key")
	}
	var st struct {
		Voters []string `json:"voters"`
	}
	if code := get(r1.url, "/v1/cluster", &st); code != 200 || len(st.Voters) != 1 {
		t.Errorf("after a refused join: %d, voters %v; want 1", code, st.Voters)
	}

	c2 := joiner("c2", good)
	r2 := start(t, c2, logs)
	defer r2.stop()
	if !poll(func() bool { get(r1.url, "/v1/cluster", &st); return len(st.Voters) == 2 }) {
		t.Fatalf("voters %v, want c1 and c2", st.Voters)
	}
	k1, _ := os.ReadFile(filepath.Join(c1.DataDir, "central.key"))
	k2, _ := os.ReadFile(filepath.Join(c2.DataDir, "central.key"))
	if len(k1) != seal.KeySize || !bytes.Equal(k1, k2) {
		t.Error("the joined node does not have central's key")
	}
	// The follower answers for itself at /v1/cluster, and sends the rest
	// to the leader.
	// The leader lists c2 as a voter once it has appended the change,
	// which c2 may not have heard of yet: wait until it knows a leader.
	var self struct {
		ID, State, Leader string
	}
	code := 0
	poll(func() bool { code = get(r2.url, "/v1/cluster", &self); return self.Leader != "" })
	if code != 200 || self.ID != "c2" || self.State != "Follower" || self.Leader != "c1" {
		t.Errorf("the follower's /v1/cluster: %d %+v", code, self)
	}
	var sites []any
	if code := get(r2.url, "/v1/sites", &sites); code != 200 {
		t.Errorf("GET /v1/sites through the follower: %d", code)
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the admin token is in the log")
	}
}
