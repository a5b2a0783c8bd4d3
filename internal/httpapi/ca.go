package httpapi

import "net/http"

// CAPath is where both APIs serve their API CA's certificate, to anyone.
const CAPath = "/v1/ca"

// CAFingerprintHeader carries the CA's fingerprint beside its PEM.
const CAFingerprintHeader = "X-Outpost-CA-Fingerprint"

// ServeCA answers GET CAPath with a cluster's API CA certificate (PEM),
// which every node derives from the cluster key. It proves nothing by
// itself: a client checks it against the fingerprint it pinned (printed
// by every node at start) before trusting it. An empty pem answers 404.
func ServeCA(pem []byte, fingerprint string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(pem) == 0 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set(CAFingerprintHeader, fingerprint)
		w.Write(pem)
	}
}
