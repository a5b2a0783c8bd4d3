// Command centrald is Outpost's central service: the sites, their
// desired state and events, the REST API and the websocket hub every
// site's appliance connects out to.
package main

import (
	"github.com/outposthq/outpost/central/internal/app"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/internal/conf"
)

func main() {
	conf.Main("centrald", config.Load, app.Run)
}
