package app

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/internal/httpserve"
)

// The appliance's HTTP servers, built by package httpserve: the
// deadlines and caps of the configuration, and each route's shape.

// apiServer is the operator API's server. base is the context requests
// start from: they (event streams included) end with it.
func apiServer(cfg *config.Config, h http.Handler, log *slog.Logger, m *httpserve.Metrics, base func(net.Listener) context.Context) *httpserve.Server {
	return httpserve.New(httpserve.Config{Name: "api", Handler: h, Limits: cfg.APILimits,
		Log: log, Metrics: m, BaseContext: base})
}

// bootServer is the boot network's HTTP server: iPXE scripts and
// artifacts, the agent API and metadata.
func bootServer(cfg *config.Config, h http.Handler, log *slog.Logger, m *httpserve.Metrics) *httpserve.Server {
	return httpserve.New(httpserve.Config{Name: "boot", Handler: h, Limits: cfg.BootLimits, Shape: bootShape,
		Log: log, Metrics: m})
}

// agentShape is the agent API's: reports and hardware inventories, a few
// KiB.
var agentShape = httpserve.Shape{MaxBody: 1 << 20}

// bootShape: the agent API takes JSON bodies; scripts, artifacts and
// metadata none of note.
func bootShape(r *http.Request) httpserve.Shape {
	if strings.HasPrefix(r.URL.Path, provision.Prefix) {
		return agentShape
	}
	return httpserve.Small
}
