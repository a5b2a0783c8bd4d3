package browsertest

import (
	"net/url"
	"slices"
	"sync"

	"github.com/chromedp/cdproto/network"
)

// Request is one request the page made, or tried to.
type Request struct {
	URL    string
	Method string
	// Type is what the page loaded it as (Document, Script, Fetch,
	// WebSocket, ...).
	Type string
	// Failed is the browser's error if the request failed
	// (net::ERR_PROXY_CONNECTION_FAILED for a host out of reach).
	Failed string
}

// Host is the request's host:port.
func (r Request) Host() string { return hostPort(r.URL) }

// recorder keeps every request of the tab, in the order made.
type recorder struct {
	mu   sync.Mutex
	reqs []Request
	byID map[network.RequestID]int
}

// listen runs in the tab's event loop: it must be quick and send no
// command.
func (r *recorder) listen(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = map[network.RequestID]int{}
	}
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		r.byID[e.RequestID] = len(r.reqs)
		r.reqs = append(r.reqs, Request{URL: e.Request.URL, Method: e.Request.Method, Type: string(e.Type)})
	case *network.EventWebSocketCreated:
		r.byID[e.RequestID] = len(r.reqs)
		r.reqs = append(r.reqs, Request{URL: e.URL, Method: "GET", Type: "WebSocket"})
	case *network.EventLoadingFailed:
		if i, ok := r.byID[e.RequestID]; ok {
			r.reqs[i].Failed = e.ErrorText
		}
	}
}

// Requests returns every request the page made so far.
func (b *Browser) Requests() []Request {
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	return slices.Clone(b.rec.reqs)
}

// Foreign returns the requests to any host but those of the URLs given
// (scheme://host:port, as Allow takes them); data: and blob: URLs, which
// reach no host, are not foreign.
func (b *Browser) Foreign(allowed ...string) []Request {
	hosts := make([]string, len(allowed))
	for i, u := range allowed {
		hosts[i] = hostPort(u)
	}
	var out []Request
	for _, r := range b.Requests() {
		if u, err := url.Parse(r.URL); err == nil && (u.Scheme == "data" || u.Scheme == "blob") {
			continue
		}
		if !slices.Contains(hosts, r.Host()) {
			out = append(out, r)
		}
	}
	return out
}
