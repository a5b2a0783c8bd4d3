package browsertest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// trustCAs makes an NSS database in home/.pki/nssdb, where chromium on
// Linux looks for the user's trust settings, trusting each CA to issue
// server certificates.
func trustCAs(ctx context.Context, home string, cas []*x509.Certificate) error {
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return err
	}
	if err := certutil(ctx, "-N", "-d", "sql:"+db, "--empty-password"); err != nil {
		return err
	}
	for i, ca := range cas {
		path := filepath.Join(home, fmt.Sprintf("ca%d.pem", i))
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
			return err
		}
		name := fmt.Sprintf("test CA %d %s", i, ca.Subject.CommonName)
		if err := certutil(ctx, "-A", "-d", "sql:"+db, "-n", name, "-t", "C,,", "-i", path); err != nil {
			return err
		}
	}
	return nil
}

func certutil(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "certutil", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("certutil %v: %w: %s", args, err, out)
	}
	return nil
}
