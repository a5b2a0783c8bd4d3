package provision_test

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/provision"
	sitepkg "github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// localSite is the site of one store with no Raft: the real state machine
// behind the real proposer, through a local log.
type localSite struct{ *sitepkg.Proposer }

func (localSite) Linearize(context.Context) error { return nil }

// fuzzT0 is the fuzzed site's clock, and the time of its leases.
var fuzzT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// FuzzAgentAPI sends the agent API requests of any method, path,
// Authorization header, body and source address, against a site where m1
// (leased addrM1) runs wf1 and m2 (leased addrM2) runs wf2, and checks
// what no answer may do: fail (5xx), change the store unless the request
// carries a valid credential from the address it belongs to, refuse the
// machine's own agent its workflow, echo a credential, answer an error
// without the agent API's error body, or keep spans of a request without
// a valid credential.
func FuzzAgentAPI(f *testing.F) {
	db, err := store.Open(filepath.Join(f.TempDir(), "store.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	key := []byte("fuzzed site's agent credential key")
	// Every process of the fuzzer mints the same credentials, so that the
	// corpus holds valid ones.
	creds := provision.NewCredentials(key)
	provision.FixNonces(creds)
	prop := sitepkg.NewProposer(sitepkg.ProposerConfig{Log: sitepkg.NewLocalLog(db, nil), Store: db,
		Now: func() time.Time { return fuzzT0 }, Nonce: func() string { return "fuzz" }})
	spans, err := tracing.OpenStore(filepath.Join(f.TempDir(), "spans.db"), 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { spans.Close() })
	h := provision.New(provision.Config{Site: localSite{prop}, Store: db, Credentials: creds, Spans: spans,
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return fuzzT0 }}).Handler()
	tokens := fuzzSite(f, db, creds, prop)

	for _, seed := range []struct{ method, target, remote, auth, body string }{
		{"GET", agentproto.PathWorkflow, addrM1 + ":40000", "Bearer " + tokens[addrM1], ""},
		{"POST", agentproto.PathReport, addrM1 + ":40000", "Bearer " + tokens[addrM1], `{"action":"a","attempt":1,"kind":"start"}`},
		{"POST", agentproto.PathReport, addrM2 + ":40000", "Bearer " + tokens[addrM1], `{"action":"a","attempt":1,"kind":"finish","ok":true}`},
		{"POST", agentproto.PathReport, "[::ffff:" + addrM2 + "]:1", "Bearer " + tokens[addrM2], `{"action":"a","attempt":1,"kind":"progress","progress":50}`},
		{"POST", agentproto.PathHardware, addrStranger + ":1", "Bearer " + tokens[addrStranger], `{"mac":"52:54:00:aa:bb:cc","cpus":2,"memory_bytes":1024,"nics":[]}`},
		{"POST", agentproto.PathHardware, addrStranger + ":1", "Bearer " + provision.OldDiscoveryCredential(key, "52:54:00:aa:bb:cc"), `{"mac":"52:54:00:aa:bb:cc","nics":[]}`},
		{"GET", agentproto.PathWorkflow, addrStranger + ":2", "Bearer " + tokens[addrStranger], ""},
		{"POST", agentproto.PathReport, addrM1 + ":3", "Bearer w" + strings.Repeat("A", 43) + ".wf1", "null"},
		{"PUT", "/agent/v1/../v1/report", addrM1 + ":4", "bearer x", "{"},
		{"POST", agentproto.PathReport, "bogus", "Bearer " + tokens[addrM1], `{"action":"a","attempt":-1,"kind":"start"}`},
		{"POST", agentproto.PathSpans, addrM1 + ":5", "Bearer " + tokens[addrM1], `{"spans":[{"trace_id":"` + traceWF +
			`","span_id":"0000000000000001","name":"agent.run","service":"outpost-agent","start":"2026-03-01T10:00:00Z","end":"2026-03-01T10:00:01Z"}]}`},
		{"POST", agentproto.PathSpans, addrM2 + ":5", "Bearer " + tokens[addrM2], `{"spans":[{"trace_id":"` + traceAlt +
			`","span_id":"0000000000000002","name":"x","service":"s","start":"2026-03-01T10:00:00Z","end":"2026-03-01T10:00:01Z"}]}`},
	} {
		f.Add(seed.method, seed.target, seed.remote, seed.auth, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, method, target, remote, auth string, body []byte) {
		req := fuzzRequest(method, target, auth, body)
		if req == nil {
			return
		}
		req.RemoteAddr = remote
		before := db.AppliedIndex()
		spansBefore, _ := spans.Len()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkFuzzAnswer(t, req, rec, tokens)
		if db.AppliedIndex() != before && !fuzzAdmitted(req, tokens) {
			t.Fatalf("%s %q from %q with %q changed the store: %d %s", method, target, remote, auth, rec.Code, rec.Body)
		}
		if n, _ := spans.Len(); n != spansBefore && !fuzzAdmitted(req, tokens) {
			t.Fatalf("%s %q from %q with %q kept spans: %d %s", method, target, remote, auth, rec.Code, rec.Body)
		}
		if fuzzAdmitted(req, tokens) && req.Method == "GET" && req.URL.Path == agentproto.PathWorkflow && rec.Code != http.StatusOK &&
			!strings.HasPrefix(tokens[fuzzSource(req).String()], "d") {
			t.Fatalf("the agent of the machine at %s was refused its workflow: %d %s", fuzzSource(req), rec.Code, rec.Body)
		}
	})
}

// fuzzSite stores machines m1 and m2 with leases and a workflow each,
// and returns the valid credential of each address: wf1's at addrM1,
// wf2's at addrM2, and a discovery credential at addrStranger.
func fuzzSite(f *testing.F, db *store.DB, creds *provision.Credentials, prop *sitepkg.Proposer) map[string]string {
	apptest.Put(f, db, fuzzT0,
		&store.Subnet{Name: "lab", CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}},
		&store.Template{Name: "t", Actions: []store.Action{
			{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}},
			{Name: "b", Type: "exec", Args: map[string]string{"command": "true"}, Needs: []string{"a"}}}},
	)
	tokens := map[string]string{}
	for i, m := range []struct{ id, mac, addr string }{{"m1", macM1, addrM1}, {"m2", macM2, addrM2}} {
		apptest.Put(f, db, fuzzT0, &store.Machine{ID: m.id, Arch: "x86_64", State: store.StateReady, Interfaces: []store.Interface{{MAC: m.mac, Boot: true}}},
			&store.Lease{IP: m.addr, MAC: m.mac, Subnet: "lab", State: store.LeaseActive, Starts: fuzzT0, Expires: fuzzT0.Add(time.Hour)})
		w := &store.Workflow{ID: "wf" + strconv.Itoa(i+1), MachineID: m.id, Template: "t"}
		if i == 0 {
			w.Traceparent = tpWF
		}
		w, err := prop.CreateWorkflow(context.Background(), w)
		if err != nil {
			f.Fatal(err)
		}
		tokens[m.addr] = creds.Workflow(w)
	}
	tokens[addrStranger] = creds.Discovery("52:54:00:aa:bb:cc", netip.MustParseAddr(addrStranger), fuzzT0.Add(time.Hour))
	return tokens
}

// checkFuzzAnswer checks what every answer must be.
func checkFuzzAnswer(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder, tokens map[string]string) {
	t.Helper()
	body := rec.Body.String()
	if rec.Code >= 500 {
		t.Fatalf("%s %q: %d %s", req.Method, req.RequestURI, rec.Code, body)
	}
	for _, tok := range tokens {
		if strings.Contains(body, tok[1:30]) {
			t.Fatalf("%s %q: the answer holds a credential: %s", req.Method, req.RequestURI, body)
		}
	}
	p, m := req.URL.Path, req.Method
	routed := p == agentproto.PathWorkflow && (m == "GET" || m == "HEAD") ||
		(p == agentproto.PathReport || p == agentproto.PathHardware || p == agentproto.PathSpans) && m == "POST"
	if routed && rec.Code != http.StatusOK && !strings.HasPrefix(body, `{"error":{"code":"`) {
		t.Fatalf("%s %q: %d without an error body: %q", req.Method, req.RequestURI, rec.Code, body)
	}
}

// fuzzSource is the request's source address, the zero Addr if it has
// none.
func fuzzSource(req *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// fuzzAdmitted reports whether req carries the valid credential of its
// source address.
func fuzzAdmitted(req *http.Request, tokens map[string]string) bool {
	v, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	src := fuzzSource(req)
	return ok && src.IsValid() && tokens[src.String()] != "" && strings.TrimSpace(v) == tokens[src.String()]
}

// fuzzRequest parses a request as an HTTP server would; nil if the server
// would refuse it before any handler.
func fuzzRequest(method, target, auth string, body []byte) *http.Request {
	raw := method + " " + target + " HTTP/1.1\r\nHost: 198.18.0.1:8080\r\nAuthorization: " + auth +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body)
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil || req.Method != method {
		return nil
	}
	return req
}
