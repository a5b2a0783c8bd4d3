package console

import (
	"fmt"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// artifactView is one artifact as the overview shows it: its state (with
// the leader's pull, while no node holds it), the images that point at
// it, and which nodes hold it and lack it.
type artifactView struct {
	SHA256, Short, Size, State, Detail string
	Names, Nodes, Missing              []string
}

// artifactViews reads the site's artifacts for the overview.
func artifactViews(tx *store.Tx) ([]artifactView, error) {
	recs, err := artifacts.Records(tx)
	if err != nil {
		return nil, err
	}
	out := make([]artifactView, len(recs))
	for i, r := range recs {
		v := artifactView{SHA256: r.SHA256, Short: r.SHA256[:12], Size: sizeText(r.Size), State: r.State,
			Names: r.Names, Nodes: r.Nodes, Missing: r.Missing}
		if p := r.Pull; p != nil && r.State != artifacts.StatePresent {
			switch {
			case p.Error != "":
				v.Detail = fmt.Sprintf("%s from %s: %s", p.Node, p.Source, p.Error)
			case p.Percent() >= 0:
				v.Detail = fmt.Sprintf("%s from %s: %d %%", p.Node, p.Source, p.Percent())
			}
		}
		if r.State == artifacts.StateUnreferenced {
			v.Detail = "no image since " + r.UnreferencedSince.UTC().Format("2006-01-02 15:04:05Z")
		}
		out[i] = v
	}
	return out, nil
}

// sizeText writes a size with a binary unit; "" when unknown.
func sizeText(n int64) string {
	if n <= 0 {
		return ""
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " " + units[i]
}
