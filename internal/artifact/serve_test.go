package artifact

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Serve answers GET and HEAD with ranges, conditions and the headers of
// an immutable artifact, over a real server.
func TestServe(t *testing.T) {
	data, d := blob(100 << 10)
	s := openStore(t)
	if _, err := s.Put(t.Context(), bytes.NewReader(data), d, -1); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Serve(w, r, d); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	etag := `"sha256-` + string(d) + `"`
	tests := map[string]struct {
		method  string
		header  map[string]string
		status  int
		body    []byte
		parts   [][]byte // a multipart answer's parts
		headers bool     // the artifact's headers are expected
	}{
		"GET":                  {method: "GET", status: 200, body: data, headers: true},
		"HEAD":                 {method: "HEAD", status: 200, body: []byte{}, headers: true},
		"one range":            {method: "GET", header: map[string]string{"Range": "bytes=1000-1999"}, status: 206, body: data[1000:2000], headers: true},
		"open range":           {method: "GET", header: map[string]string{"Range": "bytes=90000-"}, status: 206, body: data[90000:], headers: true},
		"two ranges":           {method: "GET", header: map[string]string{"Range": "bytes=0-9,500-599"}, status: 206, parts: [][]byte{data[:10], data[500:600]}, headers: true},
		"If-None-Match":        {method: "GET", header: map[string]string{"If-None-Match": etag}, status: 304, body: []byte{}},
		"If-Range matching":    {method: "GET", header: map[string]string{"Range": "bytes=10-", "If-Range": etag}, status: 206, body: data[10:], headers: true},
		"If-Range of another":  {method: "GET", header: map[string]string{"Range": "bytes=10-", "If-Range": `"sha256-0"`}, status: 200, body: data, headers: true},
		"range past the end":   {method: "GET", header: map[string]string{"Range": "bytes=200000-"}, status: 416},
		"If-None-Match, other": {method: "GET", header: map[string]string{"If-None-Match": `"x"`}, status: 200, body: data, headers: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, srv.URL, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body: %d bytes, want %d", len(body), len(tt.body))
			}
			if tt.parts != nil {
				if diff := cmp.Diff(tt.parts, parts(t, resp.Header.Get("Content-Type"), body)); diff != "" {
					t.Errorf("parts (-want +got):\n%s", diff)
				}
			}
			if tt.method == "HEAD" && resp.ContentLength != int64(len(data)) {
				t.Errorf("HEAD Content-Length %d", resp.ContentLength)
			}
			if !tt.headers {
				return
			}
			want := map[string]string{"Etag": etag, "X-Checksum-Sha256": string(d), "Cache-Control": "public, max-age=31536000, immutable"}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// parts reads a multipart/byteranges body.
func parts(t *testing.T, contentType string, body []byte) [][]byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q: %v", contentType, err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var out [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		out = append(out, b)
	}
}

// A digest the store does not hold, or that is not one, is left to the
// caller: ErrNotFound, nothing written.
func TestServeNotFound(t *testing.T) {
	s := openStore(t)
	_, missing := blob(10)
	for _, d := range []Digest{missing, "../../etc/passwd", Digest(strings.ToUpper(string(missing)))} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/a", nil)
		if err := s.Serve(rec, r, d); !errors.Is(err, ErrNotFound) {
			t.Errorf("Serve(%q): %v, want ErrNotFound", d, err)
		}
		if len(rec.Header()) != 0 || rec.Body.Len() != 0 || rec.Flushed {
			t.Errorf("Serve(%q) wrote headers %v, %d bytes", d, rec.Header(), rec.Body.Len())
		}
	}
}
