package httpapi

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/errs"
)

func TestBearer(t *testing.T) {
	tests := map[string]struct {
		header string // Authorization; none if empty
		want   string
	}{
		"none":          {},
		"bearer":        {header: "Bearer abc.def", want: "abc.def"},
		"any case":      {header: "bEaReR abc", want: "abc"},
		"spaces":        {header: "Bearer   abc  ", want: "abc"},
		"no token":      {header: "Bearer ", want: ""},
		"other scheme":  {header: "Basic YWxhZGRpbjpvcGVu", want: ""},
		"no space":      {header: "Bearerabc", want: ""},
		"scheme only":   {header: "Bearer", want: ""},
		"token no type": {header: "abc.def", want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if got := Bearer(r); got != tc.want {
				t.Errorf("Bearer(%q) = %q, want %q", tc.header, got, tc.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := map[string]int{
		errs.CodeInvalid:  http.StatusBadRequest,
		errs.CodeNotFound: http.StatusNotFound,
		errs.CodeConflict: http.StatusConflict,
		CodeUnauthorized:  http.StatusUnauthorized,
		CodeForbidden:     http.StatusForbidden,
		CodeUnavailable:   http.StatusServiceUnavailable,
		CodeInternal:      http.StatusInternalServerError,
		"":                http.StatusInternalServerError,
		"something else":  http.StatusInternalServerError,
	}
	for code, want := range tests {
		if got := Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
}

func TestWrite(t *testing.T) {
	tests := map[string]struct {
		write      func(http.ResponseWriter)
		wantStatus int
		wantHeader http.Header
		wantBody   string
	}{
		"json": {
			write:      func(w http.ResponseWriter) { WriteJSON(w, http.StatusCreated, map[string]int{"index": 7}) },
			wantStatus: http.StatusCreated,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   "{\n  \"index\": 7\n}\n",
		},
		"domain error": {
			write:      func(w http.ResponseWriter) { WriteError(w, errs.Invalid("name", "is required")) },
			wantStatus: http.StatusBadRequest,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   "{\n  \"error\": {\n    \"code\": \"invalid\",\n    \"field\": \"name\",\n    \"message\": \"is required\"\n  }\n}\n",
		},
		"unavailable": {
			write:      func(w http.ResponseWriter) { WriteError(w, &errs.Error{Code: CodeUnavailable, Message: "no leader"}) },
			wantStatus: http.StatusServiceUnavailable,
			wantHeader: http.Header{"Content-Type": {"application/json"}, "Retry-After": {RetryAfter}},
			wantBody:   "{\n  \"error\": {\n    \"code\": \"unavailable\",\n    \"message\": \"no leader\"\n  }\n}\n",
		},
		"too large": {
			write: func(w http.ResponseWriter) {
				WriteError(w, &errs.Error{Code: CodeTooLarge, Field: "body", Message: "big"})
			},
			wantStatus: http.StatusRequestEntityTooLarge,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   "{\n  \"error\": {\n    \"code\": \"too_large\",\n    \"field\": \"body\",\n    \"message\": \"big\"\n  }\n}\n",
		},
		"unauthorized": {
			write:      func(w http.ResponseWriter) { Unauthorized(w, "outpost") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: http.Header{"Content-Type": {"application/json"}, "Www-Authenticate": {`Bearer realm="outpost"`}},
			wantBody:   "{\n  \"error\": {\n    \"code\": \"unauthorized\",\n    \"message\": \"a valid bearer token is required (Authorization: Bearer \\u003ctoken\\u003e)\"\n  }\n}\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.write(rec)
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantHeader, rec.Header()); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantBody, rec.Body.String()); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPageQuery(t *testing.T) {
	for query, want := range map[string]struct {
		since uint64
		limit int
		field string // of the refusal
	}{
		"":                    {0, DefaultPage, ""},
		"since=7":             {7, DefaultPage, ""},
		"since=7&limit=10000": {7, MaxPage, ""},
		"since=x":             {field: "since"},
		"since=-1":            {field: "since"},
		"limit=0":             {field: "limit"},
		"limit=10001":         {field: "limit"},
		"limit=ten":           {field: "limit"},
	} {
		since, limit, err := PageQuery(httptest.NewRequest("GET", "/v1/events?"+query, nil))
		e, _ := errs.AsError(err)
		switch {
		case want.field != "" && (e == nil || e.Field != want.field):
			t.Errorf("%q: %v, want a refusal of %s", query, err, want.field)
		case want.field == "" && (err != nil || since != want.since || limit != want.limit):
			t.Errorf("%q: since %d, limit %d, %v; want %d, %d", query, since, limit, err, want.since, want.limit)
		}
	}
}

// ReadBody refuses, naming the body, what no JSON route can take: too
// large (413), late (408), unreadable, empty or null.
func TestReadBody(t *testing.T) {
	late := &os.PathError{Op: "read", Path: "tcp", Err: os.ErrDeadlineExceeded}
	tests := map[string]struct {
		body io.Reader
		code string // "" for read
	}{
		"object":       {strings.NewReader(`{"a":1}`), ""},
		"array":        {strings.NewReader(` [] `), ""},
		"at the limit": {strings.NewReader(`"` + strings.Repeat("x", 8) + `"`), ""},
		"over":         {strings.NewReader(`"` + strings.Repeat("x", 9) + `"`), CodeTooLarge},
		"late":         {io.MultiReader(strings.NewReader(`{"a"`), iotest.ErrReader(late)), CodeTimeout},
		"broken":       {iotest.ErrReader(errors.New("connection reset")), errs.CodeInvalid},
		"empty":        {strings.NewReader(""), errs.CodeInvalid},
		"blank":        {strings.NewReader(" \n\t"), errs.CodeInvalid},
		"null":         {strings.NewReader("null"), errs.CodeInvalid},
		"padded null":  {strings.NewReader("\n null \n"), errs.CodeInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/x", tc.body)
			_, err := ReadBody(r, 10)
			e, _ := errs.AsError(err)
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("ReadBody: %v", err)
			case tc.code != "" && (e == nil || e.Code != tc.code || e.Field != "body"):
				t.Fatalf("ReadBody: %v, want %s naming the body", err, tc.code)
			}
		})
	}
}
