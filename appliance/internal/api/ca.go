package api

import (
	"net/http"
)

// caFingerprintHeader carries the API CA's fingerprint beside its PEM.
const caFingerprintHeader = "X-Outpost-CA-Fingerprint"

// apiCA serves GET /v1/ca, to anyone: the site API CA's certificate
// (PEM), which every node derives from the site key. It proves nothing
// by itself: a client checks it against the fingerprint it pinned
// (printed by every node at start) before it trusts it.
func (s *Server) apiCA(w http.ResponseWriter, r *http.Request) {
	if len(s.caPEM) == 0 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set(caFingerprintHeader, s.caFingerprint)
	w.Write(s.caPEM)
}
