package app

import (
	"github.com/outposthq/outpost/central/internal/api"
	"log/slog"
	"net/http"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/portal"
	"github.com/outposthq/outpost/central/internal/store"
)

// Services are what the portal (and the API's fleet and order routes)
// read the fleet and place orders through. A nil one is not wired: the
// portal's pages that need it say so (503), and its order forms are not
// shown.
type Services struct {
	// Fleet is the fleet model (package fleet's reader).
	Fleet fleet.Reader
	// Orders previews and places orders (package orders).
	Orders orders.Placer
	// Audit reads the audit of the changes made through central.
	Audit orders.Auditor
}

// services are this central's Services: the store's fleet model, and
// the API's order placer and audit, so that an order placed from the
// portal is resolved, placed and audited as one placed through the API.
func services(db *store.DB, apiSrv *api.Server) Services {
	o := apiSrv.Orders()
	return Services{Fleet: db.Fleet(), Orders: o, Audit: o}
}

// withPortal serves the portal at / (its pages, assets and sign-in) in
// front of the API, which keeps /v1/, /healthz and /metrics.
func withPortal(db *store.DB, svc Services, api http.Handler, log *slog.Logger) (http.Handler, error) {
	p, err := portal.New(portal.Config{Fleet: svc.Fleet, Orders: svc.Orders, Audit: svc.Audit, Desired: db, Traces: db, History: db,
		DeriveKey: db.DeriveKey, Lookup: db.LookupToken, API: api, Log: log})
	if err != nil {
		return nil, err
	}
	return p.Handler(), nil
}
