package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// AdminTokenFree reports, as SaveAdminToken would, whether an admin token
// file is already at path: a daemon that must store the token before it
// saves the file asks first.
func AdminTokenFree(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return tokenFileExists(path)
	}
	return nil
}

func tokenFileExists(path string) error {
	return fmt.Errorf("the store holds no token, but %s exists: it belongs to data this node no longer has; "+
		"it is left as it is (move it aside to have a new admin token made)", path)
}

// SaveAdminToken writes a daemon's first admin token to path (mode 0600).
// The file must not exist: an admin token file is never overwritten. One
// beside a store that holds no token belongs to data this node no longer
// has (its store was lost or replaced), and is the operator's to look at.
func SaveAdminToken(path, token string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return tokenFileExists(path)
	}
	if err != nil {
		return fmt.Errorf("save the admin token: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("save the admin token: %w", err)
	}
	return nil
}
