package app

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/conf"
)

// fakeCentral serves the site's artifacts as central does: GET
// /v1/sites/<site>/artifacts/<64 hex> with the site's credential as a
// bearer token, Range, 404 for a digest it does not list, 401 for a
// wrong credential, 503 with Retry-After for one it does not hold yet.
// It counts the requests and the body bytes it sends per digest, and can
// corrupt (one flipped byte) the first answer for a digest.
type fakeCentral struct {
	*httptest.Server
	site, credential string

	mu      sync.Mutex
	blobs   map[string][]byte
	holding map[string]bool // false: 503
	corrupt map[string]bool // flip a byte of the next answer
	sent    map[string]int64
	asked   map[string]int
	refused int // requests with a wrong credential
}

func startFakeCentral(t *testing.T, site, credential string) *fakeCentral {
	f := &fakeCentral{site: site, credential: credential, blobs: map[string][]byte{}, holding: map[string]bool{},
		corrupt: map[string]bool{}, sent: map[string]int64{}, asked: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

var centralPath = regexp.MustCompile(`^/v1/sites/([^/]+)/artifacts/([0-9a-f]{64})$`)

func (f *fakeCentral) serve(w http.ResponseWriter, r *http.Request) {
	m := centralPath.FindStringSubmatch(r.URL.Path)
	if m == nil || m[1] != f.site || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	if r.Header.Get("Authorization") != "Bearer "+f.credential {
		f.refused++
		f.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	d := m[2]
	f.asked[d]++
	data, listed := f.blobs[d]
	holding, corrupt := f.holding[d], f.corrupt[d]
	if corrupt && holding {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0x40
		f.corrupt[d] = false
	}
	f.mu.Unlock()
	switch {
	case !listed:
		http.Error(w, "no image of the site points at it", http.StatusNotFound)
		return
	case !holding:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "not held here yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("ETag", `"sha256-`+d+`"`)
	http.ServeContent(countingWriter{w, f, d}, r, "", time.Time{}, bytes.NewReader(data))
}

// countingWriter counts the body bytes sent for a digest.
type countingWriter struct {
	http.ResponseWriter
	f *fakeCentral
	d string
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.f.mu.Lock()
	c.f.sent[c.d] += int64(n)
	c.f.mu.Unlock()
	return n, err
}

// publish makes central list an artifact of size bytes, held or not, and
// returns its digest and bytes.
func (f *fakeCentral) publish(size int, holding bool) (string, []byte) {
	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	d := hex.EncodeToString(sum[:])
	f.mu.Lock()
	f.blobs[d], f.holding[d] = data, holding
	f.mu.Unlock()
	return d, data
}

func (f *fakeCentral) set(d string, holding, corrupt bool) {
	f.mu.Lock()
	f.holding[d], f.corrupt[d] = holding, corrupt
	f.mu.Unlock()
}

func (f *fakeCentral) counts(d string) (sent int64, asked, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[d], f.asked[d], f.refused
}

// artifactSite is a 3-node site whose nodes pull from a fake central.
type artifactSite struct {
	t       *testing.T
	central *fakeCentral
	cfgs    map[string]*config.Config
	nodes   map[string]*runningNode
	token   string
}

func startArtifactSite(t *testing.T, grace time.Duration) *artifactSite {
	t.Helper()
	cred := "site-credential-" + rand.Text()
	credFile := filepath.Join(t.TempDir(), "site.credential")
	if err := os.WriteFile(credFile, []byte(cred+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &artifactSite{t: t, central: startFakeCentral(t, "ams2", cred), cfgs: map[string]*config.Config{}, nodes: map[string]*runningNode{}}
	for _, id := range []string{"node1", "node2", "node3"} {
		cfg := testConfig(t)
		cfg.NodeID = id
		cfg.CentralURL, cfg.InsecureCentral, cfg.SiteID, cfg.SiteCredentialFile = s.central.URL, true, "ams2", credFile
		cfg.ArtifactGrace = conf.Duration(grace)
		cfg.BootAddr = apptest.FreeAddr(t)
		if id != "node1" {
			cfg.Join, cfg.JoinTokenFile = s.cfgs["node1"].APIURL, s.cfgs["node1"].AdminTokenPath()
		}
		s.cfgs[id] = cfg
		s.nodes[id] = startNode(t, cfg)
		if id == "node1" {
			s.token = waitOut(t, s.nodes[id].out, s.nodes[id].done, regexp.MustCompile(`admin token \(shown once; also saved to .*\):\n  (\S+)\n`))[1]
		}
	}
	s.waitFor("three voters", func() bool {
		st, err := s.client("node1").Cluster(t.Context())
		return err == nil && len(st.Members) == 3 && !slices.ContainsFunc(st.Members, func(m site.MemberStatus) bool { return m.Suffrage != "Voter" })
	})
	return s
}

func (s *artifactSite) client(id string) *client.Client {
	return client.New(s.cfgs[id].APIURL, s.token)
}

func (s *artifactSite) waitFor(what string, cond func() bool) {
	s.t.Helper()
	waitFor(s.t, what, cond)
}

// artifacts is GET /v1/artifacts?node=all through node id.
func (s *artifactSite) artifacts(id string) (api.ArtifactList, error) {
	var out api.ArtifactList
	err := s.client(id).Do(s.t.Context(), http.MethodGet, "/v1/artifacts?node=all", nil, &out)
	return out, err
}

// record is d's record as node id shows it.
func (s *artifactSite) record(id, d string) (artifacts.Record, bool) {
	list, err := s.artifacts(id)
	if err != nil {
		return artifacts.Record{}, false
	}
	i := slices.IndexFunc(list.Items, func(r artifacts.Record) bool { return r.SHA256 == d })
	if i < 0 {
		return artifacts.Record{}, false
	}
	return list.Items[i], true
}

// fileSum is the sha256 of node id's copy of d, "" if it has none.
func (s *artifactSite) fileSum(id, d string) string {
	b, err := os.ReadFile(filepath.Join(s.cfgs[id].ArtifactStorePath(), "sha256", d))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// held waits until every node in ids holds d, checked on its disk, and
// the site records them all.
func (s *artifactSite) held(d string, ids ...string) {
	s.t.Helper()
	s.waitFor(fmt.Sprintf("%s held by %v", d[:12], ids), func() bool {
		for _, id := range ids {
			if s.fileSum(id, d) != d {
				return false
			}
		}
		r, ok := s.record(ids[0], d)
		return ok && r.State == artifacts.StatePresent && len(r.Nodes) >= len(ids) && !slices.ContainsFunc(ids, func(id string) bool { return !slices.Contains(r.Nodes, id) })
	})
}

// putImage stores an OS image that is its sha256 alone.
func (s *artifactSite) putImage(name, d string, size int) {
	s.t.Helper()
	img := &store.Image{Name: name, Type: store.ImageOS, SHA256: d, Size: uint64(size), Format: "raw"}
	if err := s.client("node1").Put(s.t.Context(), "images", name, img, nil); err != nil {
		s.t.Fatal(err)
	}
}

func (s *artifactSite) leader() string {
	st, err := s.client("node1").Cluster(s.t.Context())
	if err != nil {
		s.t.Fatal(err)
	}
	return st.LeaderID
}

// events are the site's events of kind about d, as node id has them.
func (s *artifactSite) events(id, kind, d string) []store.Event {
	evs, _, err := s.client(id).Events(s.t.Context(), 0, 10000)
	if err != nil {
		s.t.Fatal(err)
	}
	return slices.DeleteFunc(evs, func(e store.Event) bool { return e.Kind != kind || e.Fields["sha256"] != d })
}

// waitEvents waits until node id has at least n events of kind about d
// (events replicate: a node may not have applied the last yet), and
// returns how many it has.
func (s *artifactSite) waitEvents(id, kind, d string, n int) int {
	s.t.Helper()
	got := 0
	s.waitFor(fmt.Sprintf("%d %s events on %s", n, kind, id), func() bool {
		got = len(s.events(id, kind, d))
		return got >= n
	})
	return got
}

// bootGet fetches path from node id's boot service.
func (s *artifactSite) bootGet(id, path string, header ...string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequestWithContext(s.t.Context(), http.MethodGet, "http://"+s.cfgs[id].BootAddr+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestArtifactsAcrossTheSite runs a real 3-node site (applianced's Run
// in this process, Raft over mutual TLS on loopback) against a fake
// central serving the pull route: an image put at the site is pulled
// over the WAN once, by the leader, and copied by the other nodes from
// their peers; every node serves it by digest; a node stopped while an
// artifact arrived has it soon after it returns.
func TestArtifactsAcrossTheSite(t *testing.T) {
	s := startArtifactSite(t, time.Hour)
	const size = 3<<20 + 17
	a, data := s.central.publish(size, true)
	s.putImage("img-a", a, size)
	s.held(a, "node1", "node2", "node3")

	sent, asked, refused := s.central.counts(a)
	if sent != size || refused != 0 {
		t.Errorf("central sent %d bytes of %s in %d requests (%d refused), want %d: one WAN transfer", sent, a[:12], asked, refused, size)
	}
	// Each node's own account, asked through node2: one node, the
	// leader when it pulled (the first to hold it: artifact.present names
	// it), fetched it from the WAN; the others from peers. (Leadership
	// may have moved since, on a loaded machine.)
	s.waitEvents("node2", "artifact.present", a, 1)
	puller := s.events("node2", "artifact.present", a)[0].Fields["node"]
	var list api.ArtifactList
	s.waitFor("every node's account of its transfer", func() bool {
		var err error
		if list, err = s.artifacts("node2"); err != nil || len(list.Nodes) != 3 {
			return false
		}
		for _, st := range list.Nodes {
			wantWAN, wantPeer := int64(0), int64(size)
			if st.Node == puller {
				wantWAN, wantPeer = size, 0
			}
			if st.FetchedWAN != wantWAN || st.FetchedPeer != wantPeer || st.Error != "" || len(st.Missing) != 0 || st.HeldBytes != size {
				t.Logf("node %s (the first to hold it: %s): %+v, want %d bytes from the WAN and %d from peers", st.Node, puller, st, wantWAN, wantPeer)
				return false
			}
		}
		return true
	})
	if list.Node == nil || list.Node.Node != "node2" {
		t.Errorf("GET /v1/artifacts?node=all through node2: node %+v", list.Node)
	}
	for id := range s.cfgs {
		if id == puller {
			continue
		}
		waitMetric(t, s.cfgs[id].APIURL+"/metrics", `outpost_artifact_fetched_bytes_total{source="peer"}`, size)
		waitMetric(t, s.cfgs[id].APIURL+"/metrics", `outpost_artifacts{state="present"}`, 1)
	}
	if n := s.waitEvents("node3", "artifact.present", a, 1); n != 1 {
		t.Errorf("%d artifact.present events, want 1", n)
	}
	if n := s.waitEvents("node3", "artifact.copied", a, 2); n != 2 {
		t.Errorf("%d artifact.copied events, want 2", n)
	}

	// Every node serves it, whole and by range.
	for id := range s.cfgs {
		code, body := s.bootGet(id, "/artifacts/sha256/"+a, "Range", "bytes=1000-")
		if code != http.StatusPartialContent || !bytes.Equal(body, data[1000:]) {
			t.Errorf("%s: range of %s: %d, %d bytes", id, a[:12], code, len(body))
		}
	}

	// A follower is stopped; an artifact arrives; it returns and has it.
	leader := s.leader()
	away := "node3"
	if leader == away {
		away = "node2"
	}
	s.nodes[away].stop()
	b, _ := s.central.publish(1<<20, true)
	s.putImage("img-b", b, 1<<20)
	var others []string
	for id := range s.cfgs {
		if id != away {
			others = append(others, id)
		}
	}
	s.held(b, others...)
	back := time.Now()
	s.nodes[away] = startNode(t, s.cfgs[away])
	s.held(b, away)
	if d := time.Since(back); d > time.Minute {
		t.Errorf("%s had %s %v after it returned, want within a minute", away, b[:12], d)
	}
	if sent, _, _ := s.central.counts(b); sent != 1<<20 {
		t.Errorf("central sent %d bytes of %s, want %d", sent, b[:12], 1<<20)
	}

	// The WAN goes down and the leader stops: whichever node leads now
	// serves every artifact, and so does every other.
	s.central.Close()
	s.nodes[leader].stop()
	s.waitFor("a new leader", func() bool {
		for id := range s.cfgs {
			if id == leader {
				continue
			}
			st, err := s.client(id).Cluster(t.Context())
			if err == nil && st.LeaderID != "" && st.LeaderID != leader {
				return true
			}
		}
		return false
	})
	for id := range s.cfgs {
		if id == leader {
			continue
		}
		if code, body := s.bootGet(id, "/artifacts/sha256/"+a); code != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("%s with the WAN down and %s stopped: %d, %d bytes", id, leader, code, len(body))
		}
	}
}

// order is order id as the site has it (a linearizable read through
// node1).
func (s *artifactSite) order(id string) store.Order {
	var o store.Order
	if err := s.client("node1").Do(s.t.Context(), http.MethodGet, "/v1/orders/"+id+"?consistent=true", nil, &o); err != nil {
		s.t.Fatal(err)
	}
	return o
}

// TestArtifactOrderWaits: an order for an image central does not hold
// yet waits, saying which image and why; it starts when central serves
// the image and the leader has pulled it.
func TestArtifactOrderWaits(t *testing.T) {
	s := startArtifactSite(t, time.Hour)
	const size = 1 << 20
	c, _ := s.central.publish(size, false)
	ctx := t.Context()
	c1 := s.client("node1")
	m := apptest.Machine("m1", 1)
	m.Interfaces[0].Boot = true
	m.BMC = &store.BMC{Address: "127.0.0.1:1", Driver: "ipmi", Username: "admin", Password: "secret"}
	for _, o := range []struct {
		plural, key string
		obj         any
	}{
		{"subnets", "lab", &store.Subnet{Name: "lab", CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}}},
		{"machines", "m1", m},
		{"templates", "install", &store.Template{Name: "install", Actions: []store.Action{
			{Name: "write", Type: "image.write", Args: map[string]string{"device": "/dev/vda", "image": "{{ .image }}"}}}}},
		{"images", "img-c", &store.Image{Name: "img-c", Type: store.ImageOS, SHA256: c, Size: size, Format: "raw"}},
		{"orders", "o1", &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Image: "img-c"}},
	} {
		if err := c1.Put(ctx, o.plural, o.key, o.obj, nil); err != nil {
			t.Fatalf("put %s %s: %v", o.plural, o.key, err)
		}
	}
	o := s.order("o1")
	if o.State != store.OrderWaiting || o.ImageSHA256 != c || !strings.Contains(o.Reason, "image img-c (sha256:"+c[:12]) ||
		!strings.Contains(o.Reason, "is not at the site yet") || o.Workflow != "" {
		t.Fatalf("order %+v, want waiting for img-c", o)
	}
	// The leader asks central, which does not hold it yet: the order
	// says so.
	s.waitFor("the leader's failed pull in the order's reason", func() bool {
		o := s.order("o1")
		return o.State == store.OrderWaiting && strings.Contains(o.Reason, "503") && len(s.events("node2", "artifact.failed", c)) > 0
	})
	var w store.Workflow
	if err := c1.Get(ctx, "workflows", "o1", &w); err == nil {
		t.Fatal("a waiting order has a workflow")
	}
	s.central.set(c, true, false)
	s.waitFor("the order to start", func() bool {
		o := s.order("o1")
		return o.State != store.OrderWaiting && o.Workflow == "o1"
	})
	if err := c1.Get(ctx, "workflows", "o1", &w); err != nil {
		t.Fatal(err)
	}
	if a, _ := w.State.Plan.Action("write"); a.Args["url"] != "/artifacts/sha256/"+c || a.Args["sha256"] != c {
		t.Errorf("the workflow writes %v, want the artifact by digest, from the site", a.Args)
	}
	evs, _, err := c1.Events(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	started := slices.ContainsFunc(evs, func(e store.Event) bool { return e.Kind == "order.started" && e.Fields["order"] == "o1" })
	waited := slices.ContainsFunc(evs, func(e store.Event) bool { return e.Kind == "order.waiting" && e.Fields["order"] == "o1" })
	if !started || !waited {
		t.Errorf("events order.waiting %v, order.started %v: want both", waited, started)
	}
	if sent, _, refused := s.central.counts(c); sent != size || refused != 0 {
		t.Errorf("central sent %d bytes (%d refused), want %d", sent, refused, size)
	}

	// With the WAN down, an order for the image, present at the site,
	// starts at once: nothing on its path asks central.
	s.central.Close()
	m2 := apptest.Machine("m2", 2)
	m2.Interfaces[0].Boot = true
	m2.BMC = &store.BMC{Address: "127.0.0.1:1", Driver: "ipmi", Username: "admin", Password: "secret"}
	if err := c1.Put(ctx, "machines", "m2", m2, nil); err != nil {
		t.Fatal(err)
	}
	if err := c1.Put(ctx, "orders", "o2", &store.Order{ID: "o2", Action: store.OrderProvision, MachineID: "m2", Image: "img-c"}, nil); err != nil {
		t.Fatal(err)
	}
	if o := s.order("o2"); o.State == store.OrderWaiting || o.Workflow != "o2" || o.ImageSHA256 != c {
		t.Errorf("order for a present image with the WAN down: %+v, want started at once", o)
	}
}

// TestArtifactCorruptAndGarbage: a transfer from central with a flipped
// byte is thrown away, reported and tried again; no node ever holds or
// serves the corrupt bytes. An artifact no image points at any more is
// removed from every node after the grace period, and its record goes.
func TestArtifactCorruptAndGarbage(t *testing.T) {
	s := startArtifactSite(t, 2*time.Second)
	const size = 2 << 20
	d, data := s.central.publish(size, true)
	s.central.set(d, true, true)
	// A reader asks every node for it all along: it gets 404 or the
	// right bytes, never others.
	stop := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		var bad error
		for {
			select {
			case <-stop:
				served <- bad
				return
			default:
			}
			for id := range s.cfgs {
				code, body := s.bootGet(id, "/artifacts/sha256/"+d)
				if code == http.StatusOK && !bytes.Equal(body, data) {
					bad = fmt.Errorf("%s served %d bytes that are not the artifact", id, len(body))
				}
			}
		}
	}()
	s.putImage("img-d", d, size)
	s.held(d, "node1", "node2", "node3")
	close(stop)
	if err := <-served; err != nil {
		t.Error(err)
	}
	s.waitEvents("node1", "artifact.corrupt", d, 1)
	corrupt := s.events("node1", "artifact.corrupt", d)
	if len(corrupt) != 1 || corrupt[0].Fields["source"] != "central" || !strings.Contains(corrupt[0].Message, "corrupt") {
		t.Errorf("artifact.corrupt events: %+v, want one from central", corrupt)
	}
	if sent, asked, _ := s.central.counts(d); sent != 2*size || asked != 2 {
		t.Errorf("central sent %d bytes in %d requests, want the corrupt transfer and one more", sent, asked)
	}
	list, err := s.artifacts("node1")
	if err != nil {
		t.Fatal(err)
	}
	var corruptSeen int64
	for _, st := range list.Nodes {
		corruptSeen += st.Corrupt
		if st.PartialBytes != 0 {
			t.Errorf("node %s keeps %d partial bytes", st.Node, st.PartialBytes)
		}
	}
	if corruptSeen != 1 {
		t.Errorf("the nodes counted %d corrupt transfers, want 1", corruptSeen)
	}

	if err := s.client("node2").Delete(t.Context(), "images", "img-d"); err != nil {
		t.Fatal(err)
	}
	s.waitFor("every node to remove the unreferenced artifact, and the record to go", func() bool {
		for id := range s.cfgs {
			if _, err := os.Stat(filepath.Join(s.cfgs[id].ArtifactStorePath(), "sha256", d)); err == nil {
				return false
			}
		}
		_, ok := s.record("node3", d)
		return !ok
	})
	if n := s.waitEvents("node1", "artifact.removed", d, 3); n != 3 {
		t.Errorf("%d artifact.removed events, want one per node", n)
	}
	if code, _ := s.bootGet("node2", "/artifacts/sha256/"+d); code != http.StatusNotFound {
		t.Errorf("a removed artifact is still served: %d", code)
	}
}

// TestArtifactDownloadOutlastsWriteDeadline: the boot service's write
// deadline bounds each piece of a response, not the whole of it: an
// artifact read at a steady pace for several deadlines arrives whole
// (a multi-GiB image takes minutes at line rate). The artifact is an
// image that is a file of the artifact directory, which the node copies
// into its store, verified, and serves by digest.
func TestArtifactDownloadOutlastsWriteDeadline(t *testing.T) {
	// The deadline is long enough that a client starved of the CPU for a
	// moment on a loaded machine is not cut; the download lasts three.
	const deadline = 5 * time.Second
	cfg, token := startLimited(t, deadline)
	data := make([]byte, 12<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	d := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(cfg.ArtifactDir, "big.raw"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	img := &store.Image{Name: "big", Type: store.ImageOS, File: "big.raw", SHA256: d, Size: uint64(len(data)), Format: "raw"}
	if err := client.New(cfg.APIURL, token).Put(t.Context(), "images", "big", img, nil); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, cfg.APIURL+"/metrics", "outpost_artifact_bytes", float64(len(data)))
	resp, err := http.Get("http://" + cfg.BootAddr + "/artifacts/sha256/" + d)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// 1 MiB/s: twelve seconds for the whole, more than two write
	// deadlines.
	lim := rate.NewLimiter(1<<20, 64<<10)
	start := time.Now()
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var got int
	for {
		n, err := resp.Body.Read(buf)
		h.Write(buf[:n])
		got += n
		if werr := lim.WaitN(t.Context(), n); werr != nil {
			t.Fatal(werr)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes in %v: %v", got, time.Since(start), err)
		}
	}
	if took := time.Since(start); hex.EncodeToString(h.Sum(nil)) != d || took < 2*deadline {
		t.Errorf("read %d bytes in %v, hashing to %x: want the whole artifact over more than %v", got, took, h.Sum(nil), 2*deadline)
	}
}
