package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/outposthq/outpost/internal/apiclient"
)

// Orders placed at central, one machine or many (/v1/orders), and the
// audit of every change made through central's API (/v1/audit). The
// types mirror central's (a test keeps them in step).

// OrderRequest asks for orders: an action, for the machines a fleet
// query matches or for the Targets a preview showed.
type OrderRequest struct {
	Action  string      `json:"action"`
	Query   string      `json:"query,omitempty"`
	Targets []TargetRef `json:"targets,omitempty"`
	Params  OrderParams `json:"params"`
}

// TargetRef names one machine of one site.
type TargetRef struct {
	Site    string `json:"site"`
	Machine string `json:"machine"`
}

// OrderParams are what an order carries.
type OrderParams struct {
	Image    string   `json:"image,omitempty"`
	Template string   `json:"template,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	SSHKeys  []string `json:"ssh_keys,omitempty"`
	UserData string   `json:"user_data,omitempty"`
	Power    string   `json:"power,omitempty"`
	EFI      bool     `json:"efi,omitempty"`
}

// Preview is what a request would do, machine by machine.
type Preview struct {
	Action      string        `json:"action"`
	Items       []PreviewItem `json:"items"`
	ImageSHA256 string        `json:"image_sha256,omitempty"`
	Refused     int           `json:"refused"`
}

// PreviewItem is one machine of a preview; Problem says why its order
// would be refused.
type PreviewItem struct {
	TargetRef
	Hostname string `json:"hostname,omitempty"`
	State    string `json:"state,omitempty"`
	Will     string `json:"will"`
	Offline  bool   `json:"offline,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// OrderResult is what was placed.
type OrderResult struct {
	// Batch is the key prefix the request's orders share.
	Batch   string        `json:"batch"`
	Placed  []Placed      `json:"placed"`
	Refused []PreviewItem `json:"refused,omitempty"`
}

// Placed is one order placed.
type Placed struct {
	TargetRef
	Order    string `json:"order"`
	Revision uint64 `json:"revision"`
	Offline  bool   `json:"offline,omitempty"`
}

// Preview resolves a request without changing anything.
func (c *Client) Preview(ctx context.Context, req *OrderRequest) (*Preview, error) {
	var p Preview
	err := c.Do(ctx, http.MethodPost, "/v1/orders/preview", req, &p)
	return &p, err
}

// Place places the orders of a request (its Targets a confirmed
// preview's, or its Query).
func (c *Client) Place(ctx context.Context, req *OrderRequest) (*OrderResult, error) {
	var r OrderResult
	err := c.Do(ctx, http.MethodPost, "/v1/orders", req, &r)
	return &r, err
}

// AuditEntry is one change made through central's API or portal.
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	By     string    `json:"by"`
	Role   string    `json:"role,omitempty"`
	From   string    `json:"from,omitempty"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Status int       `json:"status"`
}

// AuditFilter selects audit entries; the zero value selects all (as
// many as central answers at once).
type AuditFilter struct {
	By, Action, Target string
	Since, Until       time.Time
	After              uint64
	Limit              int
}

// values is f as the query of /v1/audit.
func (f AuditFilter) values() url.Values {
	v := url.Values{}
	for name, s := range map[string]string{"by": f.By, "action": f.Action, "target": f.Target} {
		if s != "" {
			v.Set(name, s)
		}
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	if f.After > 0 {
		v.Set("after", strconv.FormatUint(f.After, 10))
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	return v
}

// Audit reads the audit entries f selects (operators and admins only).
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var out struct {
		Entries []AuditEntry `json:"entries"`
	}
	err := c.Do(ctx, http.MethodGet, withQuery("/v1/audit", f.values()), nil, &out)
	return out.Entries, err
}

// AuditDownload writes the audit entries f selects to w as central
// formats them: format is "jsonl" or "csv".
func (c *Client) AuditDownload(ctx context.Context, f AuditFilter, format string, w io.Writer) error {
	v := f.values()
	v.Set("format", format)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.api.Base+withQuery("/v1/audit", v), nil)
	if err != nil {
		return err
	}
	if c.api.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.api.Token)
	}
	resp, err := c.api.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("client: audit download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return apiclient.DecodeError(resp.StatusCode, raw)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("client: audit download: %w", err)
	}
	return nil
}
