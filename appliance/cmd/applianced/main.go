// Command applianced is the Outpost appliance daemon: one per site node.
package main

import (
	"github.com/outposthq/outpost/appliance/internal/app"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/internal/conf"
)

func main() {
	conf.Main("applianced", config.Load, app.Run)
}
