package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// CatalogueImage is an image of central's catalogue as central shows
// it: a name pointing at a content-addressed image, where it is placed,
// and the sites it is placed on now.
type CatalogueImage struct {
	Name string `json:"name"`
	// SHA256 is the artifact an OS image is; empty for an installer,
	// whose parts are its kernel and initrd.
	SHA256 string `json:"sha256,omitempty"`
	// Image is the syncproto.Image central writes into each placed
	// site's desired state under Name.
	Image json.RawMessage `json:"image"`
	Placement
	// Placed are the sites it is in the desired state of now.
	Placed    []PlacedSite `json:"placed"`
	UpdatedAt time.Time    `json:"updated_at"`
	UpdatedBy string       `json:"updated_by,omitempty"`
}

// Placement is where a catalogue image goes: the sites listed, and the
// sites with every label of SiteLabels.
type Placement struct {
	Sites      []string          `json:"sites,omitempty"`
	SiteLabels map[string]string `json:"site_labels,omitempty"`
}

// PlacedSite is a site a catalogue image is placed on: the revision of
// the site's desired state that put it there as it is, and whether the
// site acknowledged that revision (it has the image's record; whether
// it holds the bytes yet is the site's to say).
type PlacedSite struct {
	Site     string `json:"site"`
	Revision uint64 `json:"revision"`
	Acked    bool   `json:"acked"`
}

// PutImageRequest puts an image of the catalogue: the image (a
// syncproto.Image as JSON) and its placement.
type PutImageRequest struct {
	Image json.RawMessage `json:"image"`
	Placement
}

// PutImage puts an image of central's catalogue under name and places
// it on every matching site.
func (c *Client) PutImage(ctx context.Context, name string, req PutImageRequest) (CatalogueImage, error) {
	var out CatalogueImage
	err := c.Do(ctx, http.MethodPut, "/v1/images/"+url.PathEscape(name), req, &out)
	return out, err
}

// Images lists central's catalogue of images.
func (c *Client) Images(ctx context.Context) ([]CatalogueImage, error) {
	var page struct {
		Images []CatalogueImage `json:"images"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/images", nil, &page)
	return page.Images, err
}

// Image reads one image of the catalogue.
func (c *Client) Image(ctx context.Context, name string) (CatalogueImage, error) {
	var out CatalogueImage
	err := c.Do(ctx, http.MethodGet, "/v1/images/"+url.PathEscape(name), nil, &out)
	return out, err
}

// DeleteImage deletes an image of the catalogue, and with it the image
// from every site it was placed on.
func (c *Client) DeleteImage(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/images/"+url.PathEscape(name), nil, nil)
}

// SetSiteLabels replaces a site's labels; central places and removes the
// catalogue's images to match.
func (c *Client) SetSiteLabels(ctx context.Context, site string, labels map[string]string) (Site, error) {
	var out Site
	if labels == nil {
		labels = map[string]string{}
	}
	err := c.Do(ctx, http.MethodPut, "/v1/sites/"+url.PathEscape(site)+"/labels", map[string]any{"labels": labels}, &out)
	return out, err
}
