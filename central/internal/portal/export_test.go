package portal

import "github.com/outposthq/outpost/internal/httpapi"

// Routes is the portal's route table, for the tests that check the role
// of every route.
func Routes() []httpapi.Route { return (&Server{}).routes() }
