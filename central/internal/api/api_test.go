package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/central/internal/artifacts"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

type env struct {
	t     *testing.T
	db    *store.DB
	hub   *hub.Hub
	arts  *artifacts.Node
	reg   *prometheus.Registry
	srv   *httptest.Server
	token string
	logs  *centraltest.Buffer
}

// newEnv runs the API and the hub over one store, as centrald does.
func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with the artifacts' configuration changed by
// change (if not nil).
func newEnvWith(t *testing.T, change func(*artifacts.Config)) *env {
	db, err := store.Open(filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, rec := store.NewToken("admin")
	if err := db.CreateToken(rec); err != nil {
		t.Fatal(err)
	}
	logs := &centraltest.Buffer{}
	log := logs.Logger()
	h := hub.New(hub.Config{Store: db, Log: log, Heartbeat: time.Second})
	reg := prometheus.NewRegistry()
	acfg := artifacts.Config{DB: db, Dir: filepath.Join(t.TempDir(), "artifacts"), Registry: reg, Log: log, Hold: time.Millisecond}
	if change != nil {
		change(&acfg)
	}
	arts, err := artifacts.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- arts.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle(syncproto.Path, h)
	mux.Handle("/", New(Config{Store: db, Hub: h, Log: log, Artifacts: arts, Metrics: reg}).Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { h.Close(); srv.Close(); stop(); <-ran; db.Close() })
	return &env{t: t, db: db, hub: h, arts: arts, reg: reg, srv: srv, token: token, logs: logs}
}

// do sends a request with the admin token and decodes the answer into out.
func (e *env) do(method, path, body string, out any) int {
	e.t.Helper()
	return e.doToken(e.token, method, path, body, out)
}

func (e *env) doToken(token, method, path, body string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return res.StatusCode
}

type apiError struct {
	Error errs.Error `json:"error"`
}

func (e *env) createSite(id string) string {
	e.t.Helper()
	var out struct {
		Site       siteView `json:"site"`
		Credential string   `json:"credential"`
	}
	if code := e.do("POST", "/v1/sites", fmt.Sprintf(`{"id":%q,"name":"Site %s"}`, id, id), &out); code != http.StatusCreated {
		e.t.Fatalf("create site: %d", code)
	}
	if out.Credential == "" || out.Site.ID != id {
		e.t.Fatalf("create site: %+v", out)
	}
	return out.Credential
}

// connect opens a sync session as the site would.
func (e *env) connect(site, cred string) *websocket.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+syncproto.Path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.CloseNow() })
	send(e.t, conn, &syncproto.Hello{Site: site, Credential: syncproto.Credential(cred), Versions: syncproto.Supported, LastSeq: 100})
	if _, ok := recv(e.t, conn).(*syncproto.Welcome); !ok {
		e.t.Fatal("no welcome")
	}
	return conn
}

func send(t *testing.T, conn *websocket.Conn, m syncproto.Message) {
	t.Helper()
	frame, err := syncproto.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(context.Background(), websocket.MessageText, frame); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, conn *websocket.Conn) syncproto.Message {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, frame, err := conn.Read(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		m, err := syncproto.Decode(frame)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*syncproto.Heartbeat); !ok {
			return m
		}
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	for name, token := range map[string]string{"none": "", "wrong": e.token + "x", "garbage": "abc"} {
		var out apiError
		if code := e.doToken(token, "GET", "/v1/sites", "", &out); code != http.StatusUnauthorized || out.Error.Code != "unauthorized" {
			t.Errorf("%s token: %d %+v", name, code, out)
		}
	}
	if code := e.doToken("", "GET", "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
}

// Bad input is answered with the field at fault and changes nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.createSite("s1")
	tests := map[string]struct {
		method, path, body string
		status             int
		field              string
	}{
		"site id":        {"POST", "/v1/sites", `{"id":"Bad Id"}`, 400, "id"},
		"site exists":    {"POST", "/v1/sites", `{"id":"s1"}`, 409, ""},
		"site field":     {"POST", "/v1/sites", `{"id":"s2","color":"red"}`, 400, "color"},
		"site type":      {"POST", "/v1/sites", `{"id":7}`, 400, "id"},
		"order action":   {"PUT", "/v1/sites/s1/orders/o1", `{"action":"explode","machine_id":"m1"}`, 400, "action"},
		"order image":    {"PUT", "/v1/sites/s1/orders/o1", `{"action":"provision","machine_id":"m1"}`, 400, "image"},
		"order id":       {"PUT", "/v1/sites/s1/orders/o1", `{"id":"o2","action":"power_on","machine_id":"m1"}`, 400, "id"},
		"order machine":  {"PUT", "/v1/sites/s1/orders/o1", `{"action":"power_on"}`, 400, "machine_id"},
		"order site":     {"PUT", "/v1/sites/nope/orders/o1", `{"action":"power_on","machine_id":"m1"}`, 404, ""},
		"machine array":  {"PUT", "/v1/sites/s1/machines/m1", `[1,2]`, 400, "body"},
		"machine json":   {"PUT", "/v1/sites/s1/machines/m1", `{"id":`, 400, "body"},
		"delete missing": {"DELETE", "/v1/sites/s1/images/i1", ``, 404, ""},
		"machine mac":    {"PUT", "/v1/sites/s1/machines/m1", `{"interfaces":[{"mac":"nope"}]}`, 400, "interfaces[0].mac"},
		"machine key":    {"PUT", "/v1/sites/s1/machines/m1", `{"id":"m2"}`, 400, ""},
		"machine type":   {"PUT", "/v1/sites/s1/machines/m1", `{"bmc":"10.0.0.1"}`, 400, "bmc"},
		"image format":   {"PUT", "/v1/sites/s1/images/i1", `{"url":"http://h/i.raw","format":"iso"}`, 400, "format"},
		"template needs": {"PUT", "/v1/sites/s1/templates/t1", `{"actions":[{"name":"a","type":"reboot","needs":["b"]}]}`, 400, "actions[0].needs[0]"},
		"events since":   {"GET", "/v1/sites/s1/events?since=-1", ``, 400, "since"},
		"events limit":   {"GET", "/v1/sites/s1/events?limit=0", ``, 400, "limit"},
		"no route":       {"GET", "/v1/nothing", ``, 404, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var out apiError
			if code := e.do(tt.method, tt.path, tt.body, &out); code != tt.status || out.Error.Field != tt.field || out.Error.Message == "" {
				t.Errorf("%d %+v, want %d naming %q", code, out.Error, tt.status, tt.field)
			}
		})
	}
	s, _ := e.db.Site("s1")
	sites, _ := e.db.Sites()
	if s.Revision != 0 || len(sites) != 1 {
		t.Errorf("bad input changed something: revision %d, %d sites", s.Revision, len(sites))
	}
}

// The whole path through the API: a site is created, an order placed
// while it is offline reaches it when it connects with the credential it
// got, its events show in the API and the live stream, its sync status
// follows; an order cannot change once placed.
func TestSiteOrderEvents(t *testing.T) {
	e := newEnv(t)
	cred := e.createSite("fra-1")
	order := `{"action":"provision","machine_id":"m1","image":"debian-12","values":{"hostname":"web1"}}`
	var placed struct {
		Order    syncproto.Order `json:"order"`
		Revision uint64          `json:"revision"`
	}
	if code := e.do("PUT", "/v1/sites/fra-1/orders/o1", order, &placed); code != 200 || placed.Revision != 1 || placed.Order.ID != "o1" {
		t.Fatalf("place order: %d %+v", code, placed)
	}
	if code := e.do("PUT", "/v1/sites/fra-1/orders/o1", order, &placed); code != 200 || placed.Revision != 1 {
		t.Errorf("the same order again: %d %+v", code, placed)
	}
	if code := e.do("PUT", "/v1/sites/fra-1/orders/o1", `{"action":"power_off","machine_id":"m1"}`, nil); code != 409 {
		t.Errorf("a changed order: %d, want 409", code)
	}
	conn := e.connect("fra-1", cred)
	d, ok := recv(t, conn).(*syncproto.Desired)
	if !ok || d.Revision != 1 || d.Changes[0].Kind != "order" {
		t.Fatalf("desired: %+v", d)
	}
	var got syncproto.Order
	if err := json.Unmarshal(d.Changes[0].Object, &got); err != nil || got.Image != "debian-12" || got.Values["hostname"] != "web1" || got.ID != "o1" {
		t.Errorf("the order as the site gets it: %s", d.Changes[0].Object)
	}
	send(t, conn, &syncproto.DesiredAck{Revision: 1})

	// A machine put while the site is connected is pushed at once.
	if code := e.do("PUT", "/v1/sites/fra-1/machines/m2", `{"id":"m2","hostname":"db1"}`, nil); code != 200 {
		t.Fatalf("put machine: %d", code)
	}
	if d, ok := recv(t, conn).(*syncproto.Desired); !ok || d.Revision != 2 || d.Changes[0].Kind != "machine" {
		t.Fatalf("pushed machine: %+v", d)
	}

	// Live stream, opened before the events arrive.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/sites/fra-1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("stream: %v", err)
	}
	defer res.Body.Close()

	batch := &syncproto.Events{First: 1, Last: 2, Events: []syncproto.Event{
		{Seq: 1, Data: json.RawMessage(`{"kind":"order.created"}`)}, {Seq: 2, Data: json.RawMessage(`{"kind":"dhcp.ack"}`)}}}
	send(t, conn, batch)
	if a, ok := recv(t, conn).(*syncproto.EventsAck); !ok || a.Seq != 2 {
		t.Fatalf("ack: %+v", a)
	}
	lines := bufio.NewScanner(res.Body)
	var ids []string
	for len(ids) < 2 && lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), "id: "); ok {
			ids = append(ids, id)
		}
	}
	if fmt.Sprint(ids) != "[1 2]" {
		t.Errorf("streamed ids %v", ids)
	}

	var page struct {
		Events    []store.Event `json:"events"`
		StoredSeq uint64        `json:"stored_seq"`
	}
	code := e.do("GET", "/v1/sites/fra-1/events?since=1&limit=5", "", &page)
	var data bytes.Buffer
	if len(page.Events) == 1 {
		json.Compact(&data, page.Events[0].Data)
	}
	if code != 200 || page.StoredSeq != 2 || len(page.Events) != 1 || page.Events[0].Seq != 2 || data.String() != `{"kind":"dhcp.ack"}` {
		t.Errorf("events page: %d %+v", code, page)
	}
	var v siteView
	e.do("GET", "/v1/sites/fra-1", "", &v)
	if !v.Sync.Connected || v.Sync.LatestRevision != 2 || v.Sync.AckedRevision != 1 || v.Sync.StoredSeq != 2 || v.Sync.LastSeen.IsZero() {
		t.Errorf("sync status: %+v", v.Sync)
	}
	var list struct{ Orders []syncproto.Order }
	if e.do("GET", "/v1/sites/fra-1/orders", "", &list); len(list.Orders) != 1 || list.Orders[0].ID != "o1" {
		t.Errorf("orders: %+v", list)
	}
	if code := e.do("DELETE", "/v1/sites/fra-1/machines/m2", "", nil); code != 200 {
		t.Errorf("delete machine: %d", code)
	}
	if d, ok := recv(t, conn).(*syncproto.Desired); !ok || d.Revision != 3 || !d.Changes[0].Deleted {
		t.Fatalf("pushed delete: %+v", d)
	}
	var reset struct{ Dropped uint64 }
	if code := e.do("DELETE", "/v1/sites/fra-1/events", "", &reset); code != 200 || reset.Dropped != 2 {
		t.Errorf("reset events: %d %+v", code, reset)
	}
	if s, _ := e.db.Site("fra-1"); s.StoredSeq != 0 {
		t.Errorf("stored_seq after reset: %d", s.StoredSeq)
	}
	raw, _ := json.Marshal(v)
	logs := e.logs.String()
	for what, secret := range map[string]string{"credential": cred, "admin token": e.token} {
		if strings.Contains(logs, secret) || strings.Contains(string(raw), secret) {
			t.Errorf("the %s shows in the log or the site's view", what)
		}
	}
	if strings.Contains(string(raw), "hash") {
		t.Errorf("the site's view shows a hash: %s", raw)
	}
}

// A machine's BMC password goes to the site but is never shown.
func TestBMCPasswordNotShown(t *testing.T) {
	e := newEnv(t)
	e.createSite("s1")
	const secret = "hunter2-bmc"
	body := `{"id":"m1","bmc":{"address":"10.0.0.9","username":"admin","password":"` + secret + `"}}`
	var put, got map[string]any
	var list struct{ Machines []map[string]any }
	if code := e.do("PUT", "/v1/sites/s1/machines/m1", body, &put); code != 200 {
		t.Fatalf("put machine: %d", code)
	}
	e.do("GET", "/v1/sites/s1/machines/m1", "", &got)
	e.do("GET", "/v1/sites/s1/machines", "", &list)
	for what, v := range map[string]any{"put": put, "get": got, "list": list} {
		raw, _ := json.Marshal(v)
		if strings.Contains(string(raw), secret) || !strings.Contains(string(raw), `"password_set":true`) {
			t.Errorf("%s shows %s", what, raw)
		}
	}
	revs, _ := e.db.NextRevisions("s1", 0, 10)
	if len(revs) != 1 || !strings.Contains(string(revs[0].Changes[0].Object), secret) {
		t.Errorf("the site does not get the password: %+v", revs)
	}
}
