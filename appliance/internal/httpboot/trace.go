package httpboot

import (
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// Tracing. A fetch by a machine whose latest workflow has a traceparent
// (package machinetrace) is a boot.fetch span, child of it, whose
// tracing.AttrBootFile says what was fetched: the iPXE script (the
// machine named by the MAC it asks for), or an artifact (the machine at
// the request's source address): the installer's kernel or initrd, or
// another ("other": an iPXE binary, an OS image). Other machines'
// fetches record nothing and are served unwrapped (sendfile included).

// traceparentRE is what a traceparent put on a kernel command line must
// look like (W3C's version 00).
var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// What a route serves, for its span; "" for a route not traced.
const (
	bootScript   = "script"
	bootArtifact = "artifact" // kernel, initrd or other, decided per request
)

// Values of tracing.AttrBootFile.
const (
	fileScript = "script"
	fileKernel = "kernel"
	fileInitrd = "initrd"
	fileOther  = "other"
)

// Attributes of a boot fetch's span, besides tracing.AttrBootFile,
// AttrMachine and AttrMAC.
const (
	attrPath   = "url.path"
	attrStatus = "http.response.status_code"
	attrBytes  = "http.response.body.size"
)

// traced wraps h, serving what kind says, so that a traced machine's
// request is a span.
func (s *Server) traced(kind string, h http.HandlerFunc) http.HandlerFunc {
	if kind == "" {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		t, file := s.fetchTrace(kind, r)
		if !t.Traced() {
			h(w, r)
			return
		}
		ctx, span := otel.Tracer("github.com/outposthq/outpost/appliance/internal/httpboot").Start(
			tracing.WithRemoteParent(r.Context(), t.Traceparent), tracing.SpanBootHTTP,
			trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String(tracing.AttrBootFile, file), attribute.String(tracing.AttrMachine, t.Machine),
				attribute.String(tracing.AttrMAC, t.MAC), attribute.String(attrPath, r.URL.Path)))
		sw := &spanWriter{ResponseWriter: w}
		defer func() {
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			span.SetAttributes(attribute.Int(attrStatus, sw.status), attribute.Int64(attrBytes, sw.bytes))
			if sw.status >= 400 {
				span.SetStatus(codes.Error, http.StatusText(sw.status))
			}
			span.End()
		}()
		h(sw, r.WithContext(ctx))
	}
}

// fetchTrace finds the trace of a request and what it fetches.
func (s *Server) fetchTrace(kind string, r *http.Request) (machinetrace.Trace, string) {
	var t machinetrace.Trace
	var err error
	if kind == bootScript {
		mac := r.URL.Query().Get("mac")
		if f := r.PathValue("file"); f != "" {
			mac, _ = strings.CutSuffix(f, ".ipxe")
		}
		if mac, err = parseMAC(mac); err != nil {
			return t, ""
		}
		if t, err = s.traces.ForMAC(mac); err != nil {
			s.log.Warn("boot fetch: the machine's trace", "mac", mac, "err", err)
		}
		return t, fileScript
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return t, ""
	}
	file := fileOther
	err = s.db.View(func(tx *store.Tx) error {
		var err error
		if t, err = s.traces.Addr(tx, ap.Addr()); err != nil || !t.Traced() {
			return err
		}
		file = artifactKind(tx, r)
		return nil
	})
	if err != nil {
		s.log.Warn("boot fetch: the machine's trace", "remote", r.RemoteAddr, "err", err)
	}
	return t, file
}

// artifactKind says whether r fetches the installer's kernel or initrd,
// at the path its script names them by (under ArtifactDir, or an
// artifact's digest), or something else.
func artifactKind(tx *store.Tx, r *http.Request) string {
	for _, arch := range []string{store.ArchX86, store.ArchARM64} {
		img, _, err := tx.InstallerFor(arch)
		if err != nil || img == nil {
			continue
		}
		switch path := r.URL.Path; path {
		case artifactPath(img.Kernel):
			return fileKernel
		case artifactPath(img.Initrd):
			return fileInitrd
		}
	}
	return fileOther
}

// artifactPath is the path the installer's script fetches ref from,
// as artifactURL makes it ("" for an http(s) URL, fetched elsewhere).
func artifactPath(ref string) string {
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		return ""
	}
	u, _, ok := artifactURL("", ref)
	if !ok {
		return ""
	}
	return u
}

// spanWriter records a traced response's status and size. It passes
// io.ReaderFrom on, so that an artifact still goes by sendfile(2).
type spanWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *spanWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *spanWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *spanWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

func (w *spanWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap is for http.ResponseController.
func (w *spanWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
