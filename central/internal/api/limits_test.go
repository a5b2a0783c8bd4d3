package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Every route that takes a body refuses an empty or null one, naming the
// body, and changes nothing.
func TestNullBody(t *testing.T) {
	e := newEnv(t)
	if code := e.do("POST", "/v1/sites", `{"id":"fra-1","name":"Frankfurt 1"}`, nil); code != http.StatusCreated {
		t.Fatalf("create site: %d", code)
	}
	routes := []string{
		"POST /v1/sites", "PUT /v1/sites/fra-1/orders/o1", "PUT /v1/sites/fra-1/machines/m1",
		"PUT /v1/sites/fra-1/images/i1", "PUT /v1/sites/fra-1/templates/t1",
	}
	for _, route := range routes {
		for _, body := range []string{"null", "\tnull ", ""} {
			t.Run(fmt.Sprintf("%s %q", route, body), func(t *testing.T) {
				method, path, _ := strings.Cut(route, " ")
				var got httpapi.ErrorBody
				if code := e.do(method, path, body, &got); code != http.StatusBadRequest {
					t.Fatalf("%d %+v, want 400", code, got.Error)
				}
				if got.Error.Code != errs.CodeInvalid || got.Error.Field != "body" {
					t.Errorf("error %+v, want invalid naming the body", got.Error)
				}
			})
		}
	}
	var items struct{ Machines []any }
	if code := e.do("GET", "/v1/sites/fra-1/machines", "", &items); code != http.StatusOK || len(items.Machines) != 0 {
		t.Errorf("machines after the refused puts: %d %v", code, items.Machines)
	}
}

// A body over the limit is 413 naming the body, and stores nothing.
func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	e.do("POST", "/v1/sites", `{"id":"fra-1","name":"Frankfurt 1"}`, nil)
	body := `{"id":"m1","hostname":"` + strings.Repeat("x", maxBody) + `"}`
	var got httpapi.ErrorBody
	if code := e.do("PUT", "/v1/sites/fra-1/machines/m1", body, &got); code != http.StatusRequestEntityTooLarge ||
		got.Error.Code != httpapi.CodeTooLarge || got.Error.Field != "body" {
		t.Fatalf("a %d-byte body: %d %+v, want 413 too_large naming the body", len(body), code, got.Error)
	}
	if code := e.do("GET", "/v1/sites/fra-1/machines/m1", "", nil); code != http.StatusNotFound {
		t.Errorf("GET the machine: %d, want 404", code)
	}
}
