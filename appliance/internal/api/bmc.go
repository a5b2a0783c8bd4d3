package api

import (
	"net/http"

	"github.com/outposthq/outpost/internal/errs"
)

// acceptCertificateRequest is the body of POST
// /v1/machines/{key}/bmc/accept-certificate.
type acceptCertificateRequest struct {
	// Fingerprint is the SHA-256 fingerprint of the certificate to trust
	// ("sha256:" and 64 hex digits, or openssl's "AB:CD:..."), as the
	// machine's bmc.certificate.presented shows it or as read from the
	// BMC itself.
	Fingerprint string `json:"fingerprint"`
}

// acceptBMCCertificate makes a certificate the one the site trusts for a
// machine's Redfish BMC, and answers the machine.
func (s *Server) acceptBMCCertificate(w http.ResponseWriter, r *http.Request) {
	var req acceptCertificateRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Fingerprint == "" {
		s.writeError(w, r, errs.Invalid("fingerprint", "is required: the certificate to trust (the machine's bmc.certificate.presented shows the one its BMC presented)"))
		return
	}
	m, err := s.site.AcceptBMCCertificate(r.Context(), r.PathValue("key"), req.Fingerprint)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m.View())
}
