package console

import (
	"io/fs"

	"github.com/outposthq/outpost/internal/httpapi"
)

// Routes is the console's route table, for the tests that check the
// role of every route.
func Routes() []httpapi.Route { return (&Server{}).routes() }

// Files are the console's embedded files.
func Files() fs.FS { return files }
