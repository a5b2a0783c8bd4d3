// Package e2e runs real applianced processes, on 127.0.0.1 and in network
// namespaces with real peers (QEMU firmware, dhclient, udhcpc, tftp-hpa,
// dnsmasq), and checks what an operator relies on: a write to any node is
// replicated, acknowledged writes survive the loss of the leader, a
// restart keeps every object, a damaged store is refused rather than
// replaced, secrets stay out of answers and logs, machines network-boot
// from BIOS and UEFI firmware, and DHCP survives a leader kill without
// giving an address to two machines.
//
// The tests are heavy (they build the binary and start several processes),
// so they never run in parallel; -short skips them unless CI is set.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/testnet"
)

// binDir holds the binaries built for this test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outpost-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// applianced returns the path of the applianced binary, building it once
// per test run.
func applianced(t *testing.T) string {
	t.Helper()
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("e2e: starts real applianced processes; skipped with -short")
	}
	return binary(t, "applianced", "./appliance/cmd/applianced")
}

// centrald returns the path of the central daemon, built once per run.
func centrald(t *testing.T) string {
	t.Helper()
	applianced(t) // the same -short rule
	return binary(t, "centrald", "./central/cmd/centrald")
}

// outpostCLI returns the path of the outpost CLI, built once per run.
func outpostCLI(t *testing.T) string {
	t.Helper()
	return binary(t, "outpost", "./appliance/cmd/outpost")
}

// built holds each binary's build, keyed by name.
var built sync.Map // name -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// binary builds the command at pkg (relative to the module root) into
// binDir as name, once per test run.
func binary(t *testing.T, name, pkg string) string {
	t.Helper()
	v, _ := built.LoadOrStore(name, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() { b.path, b.err = buildCommand(pkg, name) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// buildCommand builds the command at pkg into binDir as name.
func buildCommand(pkg, name string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("e2e: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("e2e: not inside a Go module")
	}
	bin := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("e2e: build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// freePort returns a port on 127.0.0.1 that was free a moment ago, below
// the ephemeral range (testnet.FreePort).
func freePort(t *testing.T) int { return testnet.FreePort(t) }

// node is one appliance: its identity, flags and data survive restarts;
// proc is its current (or last) process.
type node struct {
	id      string
	dataDir string
	apiURL  string
	args    []string
	env     []string
	runs    int
	proc    *process
}

// process is one run of applianced.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr string // log file paths
	done           chan struct{}
	err            error // from Wait, valid once done is closed
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exitCode is the process's exit code, or -1 if a signal ended it.
func (p *process) exitCode() int { return p.cmd.ProcessState.ExitCode() }

func (n *node) running() bool { return n.proc != nil && n.proc.running() }

func (n *node) storePath() string { return filepath.Join(n.dataDir, "store.db") }

// cluster is a set of nodes of one site under one test.
type cluster struct {
	t      *testing.T
	bin    string
	dir    string
	logDir string
	nodes  []*node
	token  string
	http   *http.Client
}

func newCluster(t *testing.T) *cluster {
	bin := applianced(t)
	dir := t.TempDir()
	c := &cluster{
		t:      t,
		bin:    bin,
		dir:    dir,
		logDir: filepath.Join(dir, "logs"),
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     30 * time.Second,
		}},
	}
	if err := os.MkdirAll(c.logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir, so it runs before the directory goes.
	t.Cleanup(c.cleanup)
	return c
}

// addNode defines a node; join is the API URL of a member to join, or ""
// to bootstrap a new cluster.
func (c *cluster) addNode(id, join string) *node {
	api := fmt.Sprintf("127.0.0.1:%d", freePort(c.t))
	n := &node{
		id:      id,
		dataDir: filepath.Join(c.dir, id),
		apiURL:  "http://" + api,
		args: []string{
			"-id", id,
			"-data-dir", filepath.Join(c.dir, id),
			"-api-addr", api,
			"-raft-addr", fmt.Sprintf("127.0.0.1:%d", freePort(c.t)),
			"-log-level", "debug",
		},
	}
	if join != "" {
		n.args = append(n.args, "-join", join)
		n.env = []string{"OUTPOST_JOIN_TOKEN=" + c.token}
	}
	c.nodes = append(c.nodes, n)
	return n
}

// start runs a new process for n with its flags, logging to files of its
// own under the cluster's log directory.
func (c *cluster) start(n *node) {
	c.t.Helper()
	if n.running() {
		c.t.Fatalf("start %s: already running", n.id)
	}
	n.runs++
	prefix := filepath.Join(c.logDir, fmt.Sprintf("%s.run%d", n.id, n.runs))
	p := &process{stdout: prefix + ".stdout", stderr: prefix + ".stderr", done: make(chan struct{})}
	stdout, err := os.Create(p.stdout)
	if err != nil {
		c.t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(p.stderr)
	if err != nil {
		c.t.Fatal(err)
	}
	defer stderr.Close()
	p.cmd = exec.Command(c.bin, n.args...)
	p.cmd.Env = append(baseEnv(), n.env...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.id, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	n.proc = p
}

// baseEnv is the test's environment without Outpost's own variables, so
// that only what a node is given reaches it.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OUTPOST_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill ends n's process with SIGKILL and waits for it.
func (c *cluster) kill(n *node) {
	c.t.Helper()
	if !n.running() {
		return
	}
	_ = n.proc.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.proc.done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("kill %s: still running 30s after SIGKILL", n.id)
	}
}

// stop sends SIGTERM to n and waits for it to exit by itself, failing the
// test if it does not within timeout or exits other than with status 0.
func (c *cluster) stop(n *node, timeout time.Duration) {
	c.t.Helper()
	if !n.running() {
		c.t.Fatalf("stop %s: not running", n.id)
	}
	start := time.Now()
	if err := n.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("stop %s: %v", n.id, err)
	}
	select {
	case <-n.proc.done:
	case <-time.After(timeout):
		c.kill(n)
		c.t.Fatalf("stop %s: still running %v after SIGTERM (killed)", n.id, timeout)
	}
	if code := n.proc.exitCode(); code != 0 {
		c.t.Fatalf("stop %s: exit status %d after SIGTERM (%v), want 0", n.id, code, n.proc.err)
	}
	c.t.Logf("%s stopped with SIGTERM in %v", n.id, time.Since(start).Round(time.Millisecond))
}

// cleanup kills whatever still runs and, if the test failed, shows the
// end of every log.
func (c *cluster) cleanup() {
	for _, n := range c.nodes {
		if n.running() {
			_ = n.proc.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-n.proc.done:
			case <-time.After(30 * time.Second):
				c.t.Errorf("%s (pid %d) survived SIGKILL for 30s", n.id, n.proc.cmd.Process.Pid)
			}
		}
	}
	if !c.t.Failed() {
		return
	}
	files, _ := filepath.Glob(filepath.Join(c.logDir, "*"))
	for _, f := range files {
		c.t.Logf("--- tail of %s ---\n%s", filepath.Base(f), tail(f, 60))
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// startCluster starts a site of size nodes: n1 bootstraps, the others join
// it at once, and it returns when every node sees the same leader and all
// voters.
func startCluster(t *testing.T, size int) *cluster {
	c := newCluster(t)
	n1 := c.addNode("n1", "")
	c.start(n1)
	c.token = c.waitAdminToken(n1)
	for i := 2; i <= size; i++ {
		c.start(c.addNode(fmt.Sprintf("n%d", i), n1.apiURL))
	}
	c.waitFormed(c.nodes...)
	return c
}

// waitAdminToken waits for the bootstrap node to write the first admin
// token and returns it.
func (c *cluster) waitAdminToken(n *node) string {
	c.t.Helper()
	path := filepath.Join(n.dataDir, "admin.token")
	var token string
	c.waitFor(60*time.Second, "admin token in "+path, func() error {
		if !n.running() {
			return fmt.Errorf("%s exited: %v", n.id, n.proc.err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.HasSuffix(raw, []byte("\n")) {
			return errors.New("token file not complete yet")
		}
		token = strings.TrimSpace(string(raw))
		return nil
	})
	return token
}

// waitFor polls cond until it returns nil, failing the test with cond's
// last error after timeout.
func (c *cluster) waitFor(timeout time.Duration, what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: not after %v: %v", what, timeout, err)
		}
		select {
		case <-c.t.Context().Done():
			c.t.Fatalf("waiting for %s: %v", what, c.t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitFormed waits until every node in nodes sees the same leader and
// len(c.nodes) voters, each with a known API address, and returns the
// leader's ID.
func (c *cluster) waitFormed(nodes ...*node) string {
	c.t.Helper()
	var leader string
	c.waitFor(90*time.Second, "the cluster to form", func() error {
		leader = ""
		for _, n := range nodes {
			st, err := c.status(n)
			if err != nil {
				return err
			}
			if st.LeaderID == "" {
				return fmt.Errorf("%s sees no leader", n.id)
			}
			if leader != "" && st.LeaderID != leader {
				return fmt.Errorf("%s sees leader %s, another node %s", n.id, st.LeaderID, leader)
			}
			leader = st.LeaderID
			voters := 0
			for _, m := range st.Members {
				if m.Suffrage == "Voter" {
					voters++
				}
				if m.APIAddr == "" {
					return fmt.Errorf("%s: member %s has no API address yet", n.id, m.ID)
				}
			}
			if voters != len(c.nodes) {
				return fmt.Errorf("%s sees %d voters, want %d", n.id, voters, len(c.nodes))
			}
		}
		return nil
	})
	return leader
}

func (c *cluster) node(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %q", id)
	return nil
}

// do sends one API request to n with the admin token and returns the
// status and body.
func (c *cluster) do(ctx context.Context, n *node, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.apiURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// get reads path on n into out, which must answer 200.
func (c *cluster) get(n *node, path string, out any) error {
	ctx, cancel := context.WithTimeout(c.t.Context(), 20*time.Second)
	defer cancel()
	code, raw, err := c.do(ctx, n, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("%s: GET %s: %w", n.id, path, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: GET %s: HTTP %d: %s", n.id, path, code, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: GET %s: %w", n.id, path, err)
	}
	return nil
}

// send makes a write on n and fails the test unless it answers 2xx. It
// returns the body.
func (c *cluster) send(n *node, method, path string, body any) []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	code, raw, err := c.do(ctx, n, method, path, body)
	if err != nil {
		c.t.Fatalf("%s: %s %s: %v", n.id, method, path, err)
	}
	if code/100 != 2 {
		c.t.Fatalf("%s: %s %s: HTTP %d: %s", n.id, method, path, code, bytes.TrimSpace(raw))
	}
	return raw
}

func (c *cluster) status(n *node) (site.Status, error) {
	var st site.Status
	err := c.get(n, "/v1/cluster", &st)
	return st, err
}

// machines lists n's machines by ID; consistent makes the read
// linearizable.
func (c *cluster) machines(n *node, consistent bool) (map[string]store.Machine, error) {
	path := "/v1/machines"
	if consistent {
		path += "?consistent=true"
	}
	var page struct{ Items []store.Machine }
	if err := c.get(n, path, &page); err != nil {
		return nil, err
	}
	out := make(map[string]store.Machine, len(page.Items))
	for _, m := range page.Items {
		out[m.ID] = m
	}
	return out, nil
}

// newMachine is a valid machine with one boot interface.
func newMachine(id, mac string) store.Machine {
	return store.Machine{
		ID:         id,
		Hostname:   id,
		Interfaces: []store.Interface{{Name: "eth0", MAC: mac, Boot: true}},
	}
}
