package api

import (
	"bytes"
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
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

// bootPXERequest is the optional body of POST /v1/machines/{key}/boot-pxe.
type bootPXERequest struct {
	// Persistent sets the network for every boot, not only the next.
	Persistent bool `json:"persistent,omitempty"`
	// EFI asks for a UEFI network boot rather than a legacy one.
	EFI bool `json:"efi,omitempty"`
}

// bootPXE queues a BMC job that sets the machine's next boot device to
// the network, and answers 202 with the job (pending: GET /v1/jobs/{id}
// follows it). The console's next-boot-PXE button does the same.
func (s *Server) bootPXE(w http.ResponseWriter, r *http.Request) {
	var req bootPXERequest
	raw, err := httpapi.ReadBody(r, maxBody)
	if err == nil && len(bytes.TrimSpace(raw)) > 0 {
		err = store.DecodeStrict(bytes.NewReader(raw), &req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	j, err := s.site.BootPXE(r.Context(), r.PathValue("key"), req.Persistent, req.EFI)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}
